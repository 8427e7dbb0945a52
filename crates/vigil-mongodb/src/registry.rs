//! Component records (versioned JSON) and content-addressed artifacts. An artifact is stored in
//! chunks of 8 MiB (`vigil_artifact_chunks`), since one BSON document holds at most 16 MiB and
//! a network's weights may hold hundreds; its head (`vigil_artifacts`) is written last, so an
//! artifact whose writer died half-way reads as absent and is written again whole.

use mongodb::bson::{doc, spec::BinarySubtype, Binary, Bson};
use vigil_core::backend::{self, ComponentVersions, StoredComponent};
use vigil_core::{Error, Registry, Result};

use crate::error::{code, db_err, DUPLICATE_KEY};
use crate::MongoBackend;

const CHUNK: usize = 8 << 20;

impl Registry for MongoBackend {
    fn put_artifact(&self, bytes: &[u8]) -> Result<String> {
        let hash = backend::content_hash(bytes);
        let heads = self.collection("vigil_artifacts");
        let present = heads
            .find_one(doc! { "_id": &hash })
            .run()
            .map_err(db_err("reading an artifact"))?;
        if present.is_some() {
            return Ok(hash);
        }
        let chunks = self.collection("vigil_artifact_chunks");
        let pieces: Vec<&[u8]> = if bytes.is_empty() {
            vec![&[]]
        } else {
            bytes.chunks(CHUNK).collect()
        };
        for (n, piece) in pieces.iter().enumerate() {
            let data = Bson::Binary(Binary {
                subtype: BinarySubtype::Generic,
                bytes: piece.to_vec(),
            });
            chunks
                .replace_one(
                    doc! { "_id": { "hash": &hash, "n": n as i64 } },
                    doc! { "_id": { "hash": &hash, "n": n as i64 }, "data": data },
                )
                .upsert(true)
                .run()
                .map_err(db_err("storing an artifact"))?;
        }
        let head = doc! { "_id": &hash, "size": bytes.len() as i64, "chunks": pieces.len() as i64 };
        match heads.insert_one(head).run() {
            Ok(_) => Ok(hash),
            Err(e) if code(&e) == Some(DUPLICATE_KEY) => Ok(hash),
            Err(e) => Err(db_err("storing an artifact")(e)),
        }
    }

    fn get_artifact(&self, hash: &str) -> Result<Vec<u8>> {
        let head = self
            .collection("vigil_artifacts")
            .find_one(doc! { "_id": hash })
            .run()
            .map_err(db_err("reading an artifact"))?;
        let Some(head) = head else {
            return backend::verify_artifact(hash, None);
        };
        let count = head.get_i64("chunks").unwrap_or(0);
        let mut bytes = Vec::with_capacity(head.get_i64("size").unwrap_or(0).max(0) as usize);
        let cursor = self
            .collection("vigil_artifact_chunks")
            .find(doc! { "_id.hash": hash })
            .sort(doc! { "_id.n": 1 })
            .run()
            .map_err(db_err("reading an artifact"))?;
        let mut seen = 0;
        for chunk in cursor {
            let chunk = chunk.map_err(db_err("reading an artifact"))?;
            if let Ok(data) = chunk.get_binary_generic("data") {
                bytes.extend_from_slice(data);
                seen += 1;
            }
        }
        if seen != count {
            return Err(Error::Corrupt {
                collection: "vigil_artifacts".into(),
                reason: format!("artifact {hash} has {seen} of its {count} chunks"),
            });
        }
        backend::verify_artifact(hash, Some(bytes))
    }

    fn put_component(
        &self,
        kind: &str,
        identifier: &str,
        record: &serde_json::Value,
    ) -> Result<u32> {
        let coll = self.collection("vigil_components");
        // The next version; two writers racing for it meet the unique index, and the loser
        // numbers again.
        loop {
            let last = coll
                .find_one(doc! { "kind": kind, "identifier": identifier })
                .sort(doc! { "version": -1 })
                .run()
                .map_err(db_err("numbering a component"))?;
            let next = last.and_then(|d| d.get_i64("version").ok()).unwrap_or(0) + 1;
            let row = doc! {
                "kind": kind,
                "identifier": identifier,
                "version": next,
                // As JSON text: the record reads back exactly as it was written.
                "record": record.to_string(),
                "created_at": vigil_core::listen::now(),
            };
            match coll.insert_one(row).run() {
                Ok(_) => return Ok(next as u32),
                Err(e) if code(&e) == Some(DUPLICATE_KEY) => continue,
                Err(e) => return Err(db_err("storing a component")(e)),
            }
        }
    }

    fn get_component(
        &self,
        kind: &str,
        identifier: &str,
        version: Option<u32>,
    ) -> Result<Option<StoredComponent>> {
        let mut filter = doc! { "kind": kind, "identifier": identifier };
        if let Some(v) = version {
            filter.insert("version", i64::from(v));
        }
        let row = self
            .collection("vigil_components")
            .find_one(filter)
            .sort(doc! { "version": -1 })
            .run()
            .map_err(db_err("reading a component"))?;
        let Some(row) = row else { return Ok(None) };
        let v = row.get_i64("version").unwrap_or(0) as u32;
        let text = row.get_str("record").unwrap_or("");
        backend::parse_component(kind, identifier, v, text).map(Some)
    }

    fn list_components(&self, kind: &str) -> Result<Vec<ComponentVersions>> {
        let cursor = self
            .collection("vigil_components")
            .find(doc! { "kind": kind })
            .projection(doc! { "identifier": 1, "version": 1 })
            .sort(doc! { "identifier": 1, "version": 1 })
            .run()
            .map_err(db_err("listing components"))?;
        let mut rows = Vec::new();
        for row in cursor {
            let row = row.map_err(db_err("listing components"))?;
            rows.push((
                row.get_str("identifier").unwrap_or("").to_string(),
                row.get_i64("version").unwrap_or(0) as u32,
            ));
        }
        Ok(backend::group_versions(rows))
    }

    fn remove_component(&self, kind: &str, identifier: &str, version: Option<u32>) -> Result<u64> {
        let mut filter = doc! { "kind": kind, "identifier": identifier };
        if let Some(v) = version {
            filter.insert("version", i64::from(v));
        }
        self.collection("vigil_components")
            .delete_many(filter)
            .run()
            .map(|r| r.deleted_count)
            .map_err(db_err("removing a component"))
    }
}
