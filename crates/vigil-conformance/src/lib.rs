//! The conformance suite: every case is written once here, and every backend instantiates the
//! whole suite with [`conformance_suite!`], handing it a function that opens a fresh, empty
//! Datalayer. Cases use the real MNIST digits in the repository's `data/mnist`.
//!
//! ```text
//! vigil_conformance::conformance_suite!(|| vigil::connect("sqlite::memory:").unwrap());
//! ```

pub mod cases;
pub mod data;

/// A function that opens a fresh, empty database with the given options.
pub type Factory = dyn Fn(vigil::Options) -> vigil::Datalayer;

/// Expands to one `#[test]` per conformance case, each calling `$factory` for fresh databases.
/// `$factory` has the type of [`Factory`]: it takes [`vigil::Options`] and returns a Datalayer.
#[macro_export]
macro_rules! conformance_suite {
    ($factory:expr) => {
        $crate::conformance_suite!(@cases $factory;
            png_grayscale_digits_round_trip,
            png_rgb_round_trips,
            tensors_of_every_dtype_round_trip,
            raw_bytes_round_trip,
            scalars_nesting_and_field_order_round_trip,
            user_codecs_are_registered_and_checked,
            ids_are_kept_or_generated,
            duplicate_ids_roll_back_the_whole_batch,
            bad_documents_roll_back_the_whole_batch,
            folds_follow_the_probability_and_the_seed,
            equality_and_in_on_real_labels,
            comparisons_on_real_labels,
            logical_operators_on_real_labels,
            exists_and_dotted_paths,
            types_are_strict_and_missing_fields_negate,
            filters_on_ids,
            expr_compares_fields_by_mongodb_rules,
            sort_follows_mongodbs_order_of_types_and_arrays,
            digit_segments_index_arrays,
            array_and_type_operators,
            dotted_paths_reach_into_arrays_of_documents,
            regex_elem_match_and_in_process_matching,
            aggregate_pipelines_on_real_digits,
            sort_by_paths_through_arrays,
            objects_and_arrays_order_as_mongodb_does,
            bad_filters_are_errors_naming_the_operator,
            sort_skip_limit_and_projection,
            cursors_stream_and_allow_writes_while_iterating,
            updates_set_unset_inc,
            update_operators_and_upserts,
            failed_updates_change_nothing,
            replace_keeps_the_id,
            deletes,
            indexes_are_listed_and_queries_stay_correct,
            collections_are_listed_dropped_and_validated,
            hostile_names_and_values_are_safe,
            field_names_in_every_script,
            missing_collections_read_as_empty
        );
    };
    (@cases $factory:expr; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                let factory = $factory;
                $crate::cases::$case(&factory);
            }
        )*
    };
}

/// Expands to one `#[test]` per listener case (backfill, incremental outputs, failures,
/// chains, model versions, lost updates, a fit served by a listener), each calling
/// `$factory` for fresh databases.
#[macro_export]
macro_rules! listener_suite {
    ($factory:expr) => {
        $crate::conformance_suite!(@cases $factory;
            listener_backfills_every_digit_with_pytorchs_predictions,
            inserts_updates_and_deletes_keep_outputs_current,
            undecodable_images_are_parked_and_the_rest_predicted,
            parked_documents_are_retried_on_request,
            chains_run_after_their_upstream,
            a_new_model_version_replaces_every_output,
            a_document_written_during_its_computation_is_computed_again,
            a_fit_from_a_select_is_stored_recorded_and_served
        );
    };
}
