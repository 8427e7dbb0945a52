//! Collections as tables `"<name>" (seq INTEGER PRIMARY KEY, id UNIQUE NOT NULL, doc TEXT NOT
//! NULL, blobs BLOB)` in the storage format of [`vigil_core::stored`]: inserts (pipelined on a
//! second thread for large batches), finds, counts, updates, deletes and expression indexes.

use rusqlite::types::{ToSqlOutput, Value as SqlValue, ValueRef};
use rusqlite::OptionalExtension;
use vigil_core::{
    stored, Document, DocumentSource, DocumentStream, Documents, Error, FieldPath, Filter,
    FindQuery, Result, Update, UpdateOutcome, Value, ID_FIELD,
};

use vigil_core::backend::sql::{
    delete_statement, index_needed, match_order, match_statement, reads_outputs, replace_row,
    update_rows, RowStore,
};

use crate::error::{db_err, is_missing_table};
use crate::sql::{self, table, Scope, Sql};
use crate::tables::create_table;
use crate::{cursor, pool, queue, SqliteBackend};

pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS vigil_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT OR IGNORE INTO vigil_meta (key, value) VALUES ('format', '1');
CREATE TABLE IF NOT EXISTS vigil_collections (
    name TEXT PRIMARY KEY,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
);
";

fn index_name(collection: &str, path: &FieldPath) -> String {
    format!("\"{collection}${}\"", path.dotted())
}

fn blobs_param(blobs: Vec<u8>) -> SqlValue {
    if blobs.is_empty() {
        SqlValue::Null
    } else {
        SqlValue::Blob(blobs)
    }
}

fn select(collection: &str, filter: &Filter, scope: &Scope) -> Sql {
    let outputs = sql::outputs_column(scope)
        .map(|c| format!(", {c}"))
        .unwrap_or_default();
    Sql::with_filter(
        format!(
            "SELECT id, doc, blobs{outputs} FROM {} WHERE ",
            table(collection)
        ),
        filter,
        scope,
    )
}

/// The scope a filter on `collection` compiles in: listeners are looked up only when the
/// filter reads `_outputs` or the caller wants outputs attached.
fn scope_for(
    conn: &rusqlite::Connection,
    collection: &str,
    filter: &Filter,
    attach_outputs: bool,
) -> Result<Scope> {
    if attach_outputs || reads_outputs(filter) {
        sql::load_scope(conn, collection)
    } else {
        Ok(Scope::plain(table(collection)))
    }
}

/// Batches below this size are encoded on the calling thread.
const PIPELINE_MIN: usize = 256;
/// Documents per chunk handed from the encoding thread to the writer.
const PIPELINE_CHUNK: usize = 128;

/// Inserts encoded rows as they arrive; the first error (encoding or SQL) ends the insert.
/// Written rows go to `spent`, when given, to be freed by the thread that allocated them.
fn insert_rows(
    tx: &rusqlite::Transaction<'_>,
    collection: &str,
    chunks: impl IntoIterator<Item = Result<Vec<stored::StoredDocument>>>,
    spent: Option<&std::sync::mpsc::Sender<Vec<stored::StoredDocument>>>,
) -> Result<()> {
    create_table(tx, collection)?;
    let sql = format!(
        "INSERT INTO {} (id, doc, blobs) VALUES (?, ?, ?)",
        table(collection)
    );
    let mut stmt = tx
        .prepare_cached(&sql)
        .map_err(db_err("preparing an insert"))?;
    for rows in chunks {
        let rows = rows?;
        for row in &rows {
            // Bound by reference: SQLite copies what it keeps, so no extra copy is made here.
            let id = match &row.id {
                Value::Int(i) => ValueRef::Integer(*i),
                Value::String(s) => ValueRef::Text(s.as_bytes()),
                // `stored::check_document` admits only strings and integers.
                other => {
                    return Err(Error::InvalidDocument {
                        location: vigil_core::Location::path(ID_FIELD),
                        reason: format!(
                            "_id must be a string or an integer, found {}",
                            other.kind()
                        ),
                    })
                }
            };
            let blobs = if row.blobs.is_empty() {
                ValueRef::Null
            } else {
                ValueRef::Blob(&row.blobs)
            };
            match stmt.execute(rusqlite::params![
                ToSqlOutput::Borrowed(id),
                row.json.as_str(),
                ToSqlOutput::Borrowed(blobs)
            ]) {
                Ok(_) => {}
                Err(rusqlite::Error::SqliteFailure(f, _))
                    if f.code == rusqlite::ErrorCode::ConstraintViolation =>
                {
                    return Err(Error::DuplicateId {
                        collection: collection.into(),
                        id: row.id.to_json().to_string(),
                    })
                }
                Err(e) => return Err(db_err("inserting a document")(e)),
            }
        }
        if let Some(spent) = spent {
            let _ = spent.send(rows);
        }
    }
    Ok(())
}

/// A collection's rows inside a write transaction, for updates and replaces.
struct Rows<'t> {
    tx: &'t rusqlite::Transaction<'t>,
    collection: &'t str,
}

impl RowStore for Rows<'_> {
    /// `seq`s of the matching documents (bounded memory: 8 bytes a match).
    fn matching(&mut self, filter: &Filter, many: bool) -> Result<Vec<i64>> {
        let (tx, collection) = (self.tx, self.collection);
        let scope = scope_for(tx, collection, filter, false)?;
        let mut s = Sql::with_filter(match_statement(&table(collection)), filter, &scope);
        s.text.push_str(match_order(many));
        let mut stmt = match tx.prepare(&s.text) {
            Ok(stmt) => stmt,
            Err(e) if is_missing_table(&e) => return Ok(Vec::new()),
            Err(e) => return Err(db_err("preparing a match")(e)),
        };
        let seqs = stmt
            .query_map(rusqlite::params_from_iter(s.params.iter()), |r| r.get(0))
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<i64>>>())
            .map_err(db_err("matching documents"))?;
        Ok(seqs)
    }

    fn load(&mut self, seq: i64) -> Result<Document> {
        let (tx, collection) = (self.tx, self.collection);
        let sql = format!(
            "SELECT id, doc, blobs FROM {} WHERE seq = ?",
            table(collection)
        );
        let mut stmt = tx
            .prepare_cached(&sql)
            .map_err(db_err("preparing a load"))?;
        let mut rows = stmt.query([seq]).map_err(db_err("loading a document"))?;
        let row = rows
            .next()
            .map_err(db_err("loading a document"))?
            .ok_or_else(|| Error::Corrupt {
                collection: collection.into(),
                reason: format!("row {seq} vanished inside a transaction"),
            })?;
        cursor::read_row(row, collection, None)
    }

    fn store(&mut self, seq: i64, doc: &Document) -> Result<()> {
        let (tx, collection) = (self.tx, self.collection);
        let stored = stored::encode(doc)?;
        let sql = format!(
            "UPDATE {} SET doc = ?, blobs = ? WHERE seq = ?",
            table(collection)
        );
        tx.prepare_cached(&sql)
            .and_then(|mut s| {
                s.execute(rusqlite::params![
                    stored.json,
                    blobs_param(stored.blobs),
                    seq
                ])
            })
            .map_err(db_err("writing a document"))?;
        Ok(())
    }
}

impl SqliteBackend {
    /// SQLite's query plan for counting what `filter` matches: shows whether an index is used.
    pub fn explain(&self, collection: &str, filter: &Filter) -> Result<Vec<String>> {
        // A fresh connection: EXPLAIN plans at prepare time, against the schema the connection
        // last loaded, and a pooled one may not have seen a new index yet.
        let conn = pool::open_connection(self.pool.path())?;
        let scope = scope_for(&conn, collection, filter, false)?;
        let s = Sql::with_filter(
            format!(
                "EXPLAIN QUERY PLAN SELECT count(*) FROM {} WHERE ",
                table(collection)
            ),
            filter,
            &scope,
        );
        let mut stmt = conn
            .prepare(&s.text)
            .map_err(db_err("explaining a filter"))?;
        let rows = stmt
            .query_map(rusqlite::params_from_iter(s.params.iter()), |r| {
                r.get::<_, String>(3)
            })
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(db_err("explaining a filter"))?;
        Ok(rows)
    }
}

impl Documents for SqliteBackend {
    fn list_collections(&self) -> Result<Vec<String>> {
        let reader = self.pool.reader()?;
        let mut stmt = reader
            .prepare_cached("SELECT name FROM vigil_collections ORDER BY name")
            .map_err(db_err("listing collections"))?;
        let names = stmt
            .query_map([], |r| r.get(0))
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<String>>>())
            .map_err(db_err("listing collections"))?;
        Ok(names)
    }

    fn drop_collection(&self, collection: &str) -> Result<bool> {
        self.pool.write("dropping a collection", |tx| {
            let existed = tx
                .execute("DELETE FROM vigil_collections WHERE name = ?", [collection])
                .map_err(db_err("unregistering a collection"))?
                > 0;
            queue::drop_listeners_of(tx, collection)?;
            tx.execute_batch(&format!("DROP TABLE IF EXISTS {}", table(collection)))
                .map_err(db_err(format!("dropping `{collection}`")))?;
            Ok(existed)
        })
    }

    fn insert(&self, collection: &str, docs: DocumentSource<'_>) -> Result<()> {
        let encode = |doc: Result<Document>| doc.and_then(|d| stored::encode(&d));
        if docs.size_hint().0 < PIPELINE_MIN {
            let rows = docs.map(encode).collect::<Result<Vec<_>>>();
            return self
                .pool
                .write("an insert", |tx| insert_rows(tx, collection, [rows], None));
        }
        // Large batches: a second thread pulls, encodes and frees the documents chunk by
        // chunk while this one writes, so that work hides behind SQLite's own. Written rows go
        // back to that thread to be freed there: memory freed by the thread that allocated it
        // stays off the allocator's slow cross-thread path. An error on either side ends both,
        // and the transaction rolls back.
        std::thread::scope(|s| {
            let (send, receive) = std::sync::mpsc::sync_channel(4);
            let (spent, written) = std::sync::mpsc::channel::<Vec<stored::StoredDocument>>();
            s.spawn(move || {
                let mut docs = docs.map(encode).peekable();
                while docs.peek().is_some() {
                    let rows = docs
                        .by_ref()
                        .take(PIPELINE_CHUNK)
                        .collect::<Result<Vec<_>>>();
                    let failed = rows.is_err();
                    if send.send(rows).is_err() || failed {
                        break;
                    }
                    written.try_iter().for_each(drop);
                }
                drop(send);
                written.iter().for_each(drop);
            });
            let result = self.pool.write("an insert", |tx| {
                insert_rows(tx, collection, receive, Some(&spent))
            });
            drop(spent);
            result
        })
    }

    fn find(&self, collection: &str, query: &FindQuery) -> Result<DocumentStream> {
        let reader = self.pool.reader()?;
        let scope = scope_for(&reader, collection, &query.filter, true)?;
        let names = cursor::OutputNames::of(&scope);
        let mut s = select(collection, &query.filter, &scope);
        sql::order_by(&query.sort, &scope, &mut s);
        s.text.push_str(" LIMIT ? OFFSET ?");
        let limit = query.limit.map_or(-1, |l| l.min(i64::MAX as u64) as i64);
        s.params.push(SqlValue::Integer(limit));
        s.params
            .push(SqlValue::Integer(query.skip.min(i64::MAX as u64) as i64));
        // A small bounded result is cheaper to read right here than through a thread.
        if query.limit.is_some_and(|l| l <= 64) {
            let docs = cursor::collect(&reader, &s, collection, names.as_deref())?;
            let projection = query.projection.clone();
            return Ok(Box::new(docs.into_iter().map(move |d| {
                match (&projection, d) {
                    (Some(p), Ok(d)) => Ok(p.apply(d)),
                    (_, d) => d,
                }
            })));
        }
        Ok(cursor::stream(
            reader,
            s,
            collection.to_string(),
            query.projection.clone(),
            names,
        ))
    }

    fn count(&self, collection: &str, filter: &Filter) -> Result<u64> {
        let reader = self.pool.reader()?;
        let scope = scope_for(&reader, collection, filter, false)?;
        let s = Sql::with_filter(
            format!("SELECT count(*) FROM {} WHERE ", table(collection)),
            filter,
            &scope,
        );
        let mut stmt = match reader.prepare_cached(&s.text) {
            Ok(stmt) => stmt,
            Err(e) if is_missing_table(&e) => return Ok(0),
            Err(e) => return Err(db_err("preparing a count")(e)),
        };
        let n: i64 = stmt
            .query_row(rusqlite::params_from_iter(s.params.iter()), |r| r.get(0))
            .map_err(db_err("counting"))?;
        Ok(n as u64)
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
            let scope = scope_for(tx, collection, filter, false)?;
            let (start, end) = delete_statement(&table(collection), many);
            let mut s = Sql::with_filter(start, filter, &scope);
            s.text.push_str(end);
            match tx.execute(&s.text, rusqlite::params_from_iter(s.params.iter())) {
                Ok(n) => Ok(n as u64),
                Err(e) if is_missing_table(&e) => Ok(0),
                Err(e) => Err(db_err("deleting")(e)),
            }
        })
    }

    fn create_index(&self, collection: &str, path: &FieldPath) -> Result<()> {
        if !index_needed(path)? {
            return Ok(());
        }
        self.pool.write("creating an index", |tx| {
            create_table(tx, collection)?;
            // Type and value, so type-checked filters (and counts) are answered from the
            // index alone, and arrays (for element matching) are found by their type.
            let (kind, value) = sql::index_expressions(path);
            // An index made by an earlier version has the value first, which cannot serve the
            // array term: it is rebuilt in the current layout.
            let existing: Option<String> = tx
                .query_row(
                    "SELECT sql FROM sqlite_master WHERE type = 'index' AND name = ?",
                    [index_name(collection, path).trim_matches('"')],
                    |r| r.get(0),
                )
                .optional()
                .map_err(db_err("reading an index"))?;
            if existing.is_some_and(|sql| !sql.contains(&format!("({kind}"))) {
                tx.execute_batch(&format!("DROP INDEX {}", index_name(collection, path)))
                    .map_err(db_err("rebuilding an index"))?;
            }
            tx.execute_batch(&format!(
                "CREATE INDEX IF NOT EXISTS {} ON {} ({kind}, {value})",
                index_name(collection, path),
                table(collection),
            ))
            .map_err(db_err(format!("indexing `{path}` of `{collection}`")))?;
            // A dotted path's filters also test whether each prefix is an array (to reach
            // into its documents): indexing those types keeps the filters index searches.
            for (_, prefix) in vigil_core::backend::sql::traversed_prefixes(path) {
                tx.execute_batch(&format!(
                    "CREATE INDEX IF NOT EXISTS \"{collection}#type#{}\" ON {} ({})",
                    prefix.dotted(),
                    table(collection),
                    sql::doc_function("json_type", "doc", &prefix),
                ))
                .map_err(db_err(format!("indexing `{path}` of `{collection}`")))?;
            }
            Ok(())
        })
    }

    fn list_indexes(&self, collection: &str) -> Result<Vec<FieldPath>> {
        let reader = self.pool.reader()?;
        let prefix = format!("{collection}$");
        let names: Vec<String> = reader
            .prepare_cached("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ? ORDER BY name")
            .and_then(|mut s| {
                s.query_map([collection], |r| r.get(0))?
                    .collect::<rusqlite::Result<Vec<String>>>()
            })
            .map_err(db_err("listing indexes"))?;
        names
            .iter()
            .filter_map(|n| n.strip_prefix(&prefix))
            .map(FieldPath::parse)
            .collect()
    }
}
