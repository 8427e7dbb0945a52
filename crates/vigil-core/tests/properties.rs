//! Property-based runs of the invariants the fuzz targets of issue 16 are for, short enough for
//! every test run: the parsers never panic on any JSON, stored documents come back exactly as
//! they went in, and the decoders never panic on any bytes.

use proptest::prelude::*;
use serde_json::Value as Json;
use vigil_core::query::parse_sort;
use vigil_core::{
    stored, Document, Filter, PngCodec, Projection, Tensor, TensorCodec, Update, Value,
};

/// Any JSON, operators and field-name-like keys included, a few levels deep.
fn json() -> impl Strategy<Value = Json> {
    let leaf = prop_oneof![
        Just(Json::Null),
        any::<bool>().prop_map(Json::Bool),
        any::<i64>().prop_map(Json::from),
        (-1e9f64..1e9).prop_map(Json::from),
        "[a-z$._]{0,6}".prop_map(Json::String),
    ];
    leaf.prop_recursive(5, 48, 6, |inner| {
        let key = prop_oneof![
            Just("$and".to_string()),
            Just("$or".to_string()),
            Just("$nor".to_string()),
            Just("$not".to_string()),
            Just("$in".to_string()),
            Just("$gt".to_string()),
            Just("$exists".to_string()),
            Just("$set".to_string()),
            Just("$inc".to_string()),
            Just("$regex".to_string()),
            "[a-z_][a-z0-9_.$]{0,5}",
        ];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Json::Array),
            prop::collection::vec((key, inner), 0..4)
                .prop_map(|kv| Json::Object(kv.into_iter().collect())),
        ]
    })
}

/// Storable values: what `check_document` accepts.
fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::Int),
        (-1e12f64..1e12).prop_map(Value::Float),
        ".{0,8}".prop_map(Value::String),
        prop::collection::vec(any::<u8>(), 0..16).prop_map(Value::Bytes),
    ];
    leaf.prop_recursive(4, 32, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec(("[a-z][a-z0-9_]{0,5}", inner), 0..4)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Document>())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn parsers_never_panic_on_any_json(j in json()) {
        let _ = Filter::parse(&j);
        let _ = Projection::parse(&j);
        let _ = parse_sort(&j);
        if let Ok(doc) = Document::try_from(j) {
            let _ = Update::parse(&doc);
        }
    }

    #[test]
    fn stored_documents_come_back_exactly(fields in prop::collection::vec(("[a-z][a-z0-9_]{0,5}", value()), 0..6)) {
        let mut doc: Document = fields.into_iter().collect();
        doc.insert_first("_id", 1);
        prop_assume!(stored::check_document(&doc, None, None).is_ok());
        let stored = stored::encode(&doc).unwrap();
        let back = stored::decode(Value::Int(1), &stored.json, &stored.blobs, "c").unwrap();
        prop_assert_eq!(back, doc);
    }

    #[test]
    fn the_stored_decoder_never_panics(json in ".{0,64}", blobs in prop::collection::vec(any::<u8>(), 0..64)) {
        let _ = stored::decode(Value::Int(1), &json, &blobs, "c");
        let text = format!("{{\"a\":{{\"$codec\":\"image/png\",\"$blob\":[{},{}]}}}}", blobs.len() / 3, blobs.len());
        let _ = stored::decode(Value::Int(1), &text, &blobs, "c");
    }

    #[test]
    fn codecs_never_panic_on_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = PngCodec::decode(&bytes);
        let _ = TensorCodec::decode(&bytes);
        let mut tensor = b"VT1".to_vec();
        tensor.extend_from_slice(&bytes);
        let _ = TensorCodec::decode(&tensor);
    }

    #[test]
    fn tensors_round_trip(shape in prop::collection::vec(0usize..5, 0..4), seed in any::<u64>()) {
        let n: usize = shape.iter().product();
        let values: Vec<f32> = (0..n).map(|i| (i as u64 ^ seed) as f32).collect();
        let t = Tensor::from_f32(&shape, &values).unwrap();
        let back = TensorCodec::decode(TensorCodec::encode(&t).bytes()).unwrap();
        prop_assert_eq!(back, t);
    }
}
