//! Collections as tables `"<name>" (seq BIGSERIAL PRIMARY KEY, id TEXT UNIQUE NOT NULL, doc
//! JSON NOT NULL, blobs BYTEA)`: inserts, finds, counts, updates, deletes and expression
//! indexes.

use postgres::error::SqlState;
use vigil_core::backend::content_hash;
use vigil_core::{
    stored, Document, DocumentSource, DocumentStream, Documents, Error, FieldPath, Filter,
    FindQuery, Result, Update, UpdateOutcome,
};

use vigil_core::backend::sql::{
    delete_statement, index_needed, match_order, match_statement, reads_outputs, replace_row,
    update_rows, RowStore,
};

use crate::pool::{is_missing_table, pg_err};
use crate::sql::{self, table, Param, Scope, Sql};
use crate::tables::{create_table, id_json};
use crate::{cursor, queue, PostgresBackend};

pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS vigil_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO vigil_meta (key, value) VALUES ('format', '1') ON CONFLICT DO NOTHING;
CREATE TABLE IF NOT EXISTS vigil_collections (
    name TEXT PRIMARY KEY,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS vigil_indexes (
    collection TEXT NOT NULL,
    path TEXT NOT NULL,
    name TEXT NOT NULL,
    PRIMARY KEY (collection, path)
);
-- An `$expr` operand's value as MongoDB's aggregation reads a dotted path: through an array,
-- the array of what its elements hold (elements without it add nothing); a number is a field
-- name, never an index. NULL when missing. vigil_core's `json_field_value` is the same rule.
CREATE OR REPLACE FUNCTION vigil_expr_path(v json, path text[]) RETURNS json
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $f$
BEGIN
    IF v IS NULL OR cardinality(path) = 0 THEN
        RETURN v;
    END IF;
    CASE json_typeof(v)
        WHEN 'object' THEN
            RETURN vigil_expr_path(v -> path[1], path[2:]);
        WHEN 'array' THEN
            RETURN (SELECT COALESCE(json_agg(x ORDER BY i), '[]'::json)
                    FROM (SELECT vigil_expr_path(e, path) AS x, i
                          FROM json_array_elements(v) WITH ORDINALITY AS t(e, i)) s
                    WHERE x IS NOT NULL);
        ELSE
            RETURN NULL;
    END CASE;
END
$f$;
-- A key whose bytewise order is MongoDB's order of values (vigil_core's `order::sort_key`
-- rule; strings here hold no U+0000, which comparisons map to U+0001): the type's rank, then
-- the value; objects as (value's rank, name, value) per field and arrays as their elements,
-- each closed by 0x00, so that a prefix sorts first.
CREATE OR REPLACE FUNCTION vigil_sort_key(v json) RETURNS bytea
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $f$
DECLARE
    out bytea;
    b bytea;
    f float8;
    k text;
    e json;
BEGIN
    IF v IS NULL THEN
        RETURN NULL;
    END IF;
    CASE json_typeof(v)
        WHEN 'number' THEN
            f := (v #>> '{}')::float8;
            IF f = 0 THEN
                f := 0;
            END IF;
            b := float8send(f);
            IF get_byte(b, 0) >= 128 THEN
                FOR i IN 0..7 LOOP
                    b := set_byte(b, i, 255 - get_byte(b, i));
                END LOOP;
            ELSE
                b := set_byte(b, 0, get_byte(b, 0) + 128);
            END IF;
            RETURN '\\x02'::bytea || b;
        WHEN 'string' THEN
            RETURN '\\x03'::bytea || convert_to(v #>> '{}', 'UTF8') || '\\x00'::bytea;
        WHEN 'object' THEN
            out := '\\x04'::bytea;
            FOR k, e IN SELECT j.key, j.value FROM json_each(v) j LOOP
                b := vigil_sort_key(e);
                out := out || substring(b FROM 1 FOR 1) || convert_to(k, 'UTF8') || '\\x00'::bytea || b;
            END LOOP;
            RETURN out || '\\x00'::bytea;
        WHEN 'array' THEN
            out := '\\x05'::bytea;
            FOR e IN SELECT j.value FROM json_array_elements(v) j(value) LOOP
                out := out || vigil_sort_key(e);
            END LOOP;
            RETURN out || '\\x00'::bytea;
        WHEN 'boolean' THEN
            RETURN CASE WHEN (v #>> '{}') = 'true' THEN '\\x0801'::bytea ELSE '\\x0800'::bytea END;
        ELSE
            RETURN '\\x01'::bytea;
    END CASE;
END
$f$;
";

/// The scope a filter on `collection` compiles in: listeners are looked up only when the
/// filter reads `_outputs` or the caller wants outputs attached.
fn scope_for(
    client: &mut impl postgres::GenericClient,
    collection: &str,
    filter: &Filter,
    attach_outputs: bool,
) -> Result<Scope> {
    if attach_outputs || reads_outputs(filter) {
        queue::scope(client, collection)
    } else {
        Ok(Scope::plain(table(collection)))
    }
}

/// Whether a collection's table exists (a missing one reads as empty).
fn table_exists(tx: &mut postgres::Transaction<'_>, collection: &str) -> Result<bool> {
    let row = tx
        .query_opt(
            "SELECT 1 FROM vigil_collections WHERE name = $1",
            &[&collection],
        )
        .map_err(pg_err("looking up a collection"))?;
    Ok(row.is_some())
}

/// A collection's rows inside a write transaction, for updates and replaces.
struct Rows<'a, 't> {
    tx: &'a mut postgres::Transaction<'t>,
    collection: &'a str,
}

impl RowStore for Rows<'_, '_> {
    fn matching(&mut self, filter: &Filter, many: bool) -> Result<Vec<i64>> {
        let scope = scope_for(self.tx, self.collection, filter, false)?;
        let mut s = Sql::with_filter(match_statement(&table(self.collection)), filter, &scope)?;
        s.push(match_order(many));
        // Rows to change are locked until the transaction ends.
        s.push(" FOR UPDATE");
        if !table_exists(self.tx, self.collection)? {
            return Ok(Vec::new());
        }
        let rows = self
            .tx
            .query(&s.text, &s.params())
            .map_err(pg_err("matching documents"))?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    fn load(&mut self, seq: i64) -> Result<Document> {
        let row = self
            .tx
            .query_one(
                &format!(
                    "SELECT id::text, doc::text, blobs FROM {} WHERE seq = $1",
                    table(self.collection)
                ),
                &[&seq],
            )
            .map_err(pg_err("loading a document"))?;
        cursor::read_row(&row, self.collection, None)
    }

    fn store(&mut self, seq: i64, doc: &Document) -> Result<()> {
        let stored = stored::encode(doc)?;
        let blobs = (!stored.blobs.is_empty()).then_some(stored.blobs);
        self.tx
            .execute(
                &format!(
                    "UPDATE {} SET doc = $1::text::json, blobs = $2 WHERE seq = $3",
                    table(self.collection)
                ),
                &[&stored.json, &blobs, &seq],
            )
            .map_err(pg_err("writing a document"))?;
        Ok(())
    }
}

impl Documents for PostgresBackend {
    fn list_collections(&self) -> Result<Vec<String>> {
        let mut conn = self.pool.get()?;
        let rows = conn
            .query(
                "SELECT name FROM vigil_collections ORDER BY name COLLATE \"C\"",
                &[],
            )
            .map_err(pg_err("listing collections"))?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    fn drop_collection(&self, collection: &str) -> Result<bool> {
        self.pool.write("dropping a collection", |tx| {
            let existed = tx
                .execute(
                    "DELETE FROM vigil_collections WHERE name = $1",
                    &[&collection],
                )
                .map_err(pg_err("unregistering a collection"))?
                > 0;
            tx.execute(
                "DELETE FROM vigil_indexes WHERE collection = $1",
                &[&collection],
            )
            .map_err(pg_err("unregistering indexes"))?;
            queue::drop_listeners_of(tx, collection)?;
            tx.batch_execute(&format!("DROP TABLE IF EXISTS {}", table(collection)))
                .map_err(pg_err(format!("dropping `{collection}`")))?;
            Ok(existed)
        })
    }

    fn insert(&self, collection: &str, docs: DocumentSource<'_>) -> Result<()> {
        self.pool.write("an insert", |tx| {
            create_table(tx, collection)?;
            let stmt = tx
                .prepare(&format!(
                    "INSERT INTO {} (id, doc, blobs) VALUES ($1::text, $2::text::json, $3)",
                    table(collection)
                ))
                .map_err(pg_err("preparing an insert"))?;
            for doc in docs {
                let row = stored::encode(&doc?)?;
                let id = id_json(&row.id)?;
                let blobs = (!row.blobs.is_empty()).then_some(row.blobs);
                match tx.execute(&stmt, &[&id, &row.json, &blobs]) {
                    Ok(_) => {}
                    Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                        return Err(Error::DuplicateId {
                            collection: collection.into(),
                            id,
                        })
                    }
                    Err(e) => return Err(pg_err("inserting a document")(e)),
                }
            }
            Ok(())
        })
    }

    fn find(&self, collection: &str, query: &FindQuery) -> Result<DocumentStream> {
        let mut conn = self.pool.get()?;
        let scope = scope_for(&mut *conn, collection, &query.filter, true)?;
        let outputs = sql::outputs_column(&scope)
            .map(|c| format!(", {c}"))
            .unwrap_or_default();
        let names = (!scope.outputs.is_empty()).then(|| scope.names());
        let mut s = Sql::with_filter(
            format!(
                "SELECT id::text, doc::text, blobs{outputs} FROM {} WHERE ",
                table(collection)
            ),
            &query.filter,
            &scope,
        )?;
        sql::order_by(&query.sort, &scope, &mut s);
        if let Some(limit) = query.limit {
            s.push(" LIMIT ");
            s.bind(Param::Int(limit.min(i64::MAX as u64) as i64), "::bigint");
        }
        s.push(" OFFSET ");
        s.bind(
            Param::Int(query.skip.min(i64::MAX as u64) as i64),
            "::bigint",
        );
        Ok(cursor::stream(
            conn,
            s,
            collection.to_string(),
            query.projection.clone(),
            names,
        ))
    }

    fn count(&self, collection: &str, filter: &Filter) -> Result<u64> {
        let mut conn = self.pool.get()?;
        let scope = scope_for(&mut *conn, collection, filter, false)?;
        let s = Sql::with_filter(
            format!("SELECT count(*) FROM {} WHERE ", table(collection)),
            filter,
            &scope,
        )?;
        match conn.query_one(&s.text, &s.params()) {
            Ok(row) => Ok(row.get::<_, i64>(0) as u64),
            Err(e) if is_missing_table(&e) => Ok(0),
            Err(e) => Err(pg_err("counting")(e)),
        }
    }

    fn update(
        &self,
        collection: &str,
        filter: &Filter,
        update: &Update,
        many: bool,
    ) -> Result<UpdateOutcome> {
        self.pool.write("an update", |tx| {
            update_rows(&mut Rows { tx, collection }, filter, update, many)
        })
    }

    fn replace_one(
        &self,
        collection: &str,
        filter: &Filter,
        replacement: &Document,
    ) -> Result<UpdateOutcome> {
        self.pool.write("a replace", |tx| {
            replace_row(&mut Rows { tx, collection }, filter, replacement)
        })
    }

    fn delete(&self, collection: &str, filter: &Filter, many: bool) -> Result<u64> {
        self.pool.write("a delete", |tx| {
            if !table_exists(tx, collection)? {
                return Ok(0);
            }
            let scope = scope_for(tx, collection, filter, false)?;
            let (start, end) = delete_statement(&table(collection), many);
            let mut s = Sql::with_filter(start, filter, &scope)?;
            s.push(end);
            tx.execute(&s.text, &s.params()).map_err(pg_err("deleting"))
        })
    }

    fn create_index(&self, collection: &str, path: &FieldPath) -> Result<()> {
        if !index_needed(path)? {
            return Ok(());
        }
        // PostgreSQL truncates names past 63 bytes, so an index is named by a hash and the
        // (collection, path) it serves is recorded beside it.
        let name = format!(
            "vigil_ix_{}",
            &content_hash(format!("{}\u{0}{collection}\u{0}{path}", self.pool.schema).as_bytes())
                [..24]
        );
        self.pool.write("creating an index", |tx| {
            create_table(tx, collection)?;
            let [numbers, text, kind] = sql::index_expressions(path);
            tx.batch_execute(&format!(
                "CREATE INDEX IF NOT EXISTS \"{name}_n\" ON {t} (({numbers})); \
                 CREATE INDEX IF NOT EXISTS \"{name}_t\" ON {t} (({text})); \
                 CREATE INDEX IF NOT EXISTS \"{name}_k\" ON {t} (({kind}));",
                t = table(collection),
            ))
            .map_err(pg_err(format!("indexing `{path}` of `{collection}`")))?;
            // A dotted path's filters also test whether each prefix is an array (to reach
            // into its documents): indexing those types keeps them index scans.
            for (k, prefix) in vigil_core::backend::sql::traversed_prefixes(path) {
                tx.batch_execute(&format!(
                    "CREATE INDEX IF NOT EXISTS \"{name}_a{k}\" ON {t} ((json_typeof({})));",
                    sql::at_document(&prefix),
                    t = table(collection),
                ))
                .map_err(pg_err(format!("indexing `{path}` of `{collection}`")))?;
            }
            tx.execute(
                "INSERT INTO vigil_indexes (collection, path, name) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                &[&collection, &path.dotted(), &name],
            )
            .map_err(pg_err("recording an index"))?;
            Ok(())
        })
    }

    fn list_indexes(&self, collection: &str) -> Result<Vec<FieldPath>> {
        let mut conn = self.pool.get()?;
        let rows = conn
            .query(
                "SELECT path FROM vigil_indexes WHERE collection = $1 ORDER BY path COLLATE \"C\"",
                &[&collection],
            )
            .map_err(pg_err("listing indexes"))?;
        rows.iter()
            .map(|r| FieldPath::parse(r.get::<_, &str>(0)))
            .collect()
    }
}
