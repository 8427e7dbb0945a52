//! API tokens: created once, shown once, stored only as a SHA-256 hash in the database's
//! registry (kind `token`), so the CLI, every server process and the dashboard share them.
//!
//! A token is `vgl_` followed by 32 random bytes in URL-safe base64: with 256 bits of entropy a
//! fast hash is enough (no password-style stretching is needed to resist guessing), and the
//! comparison with stored hashes is constant-time.

use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use vigil::{Datalayer, Error, Result};

/// Registry kind of tokens.
pub const TOKEN: &str = "token";
const PREFIX: &str = "vgl_";

/// What a token may do; each scope includes the ones before it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Read collections, documents, models, listeners, jobs, errors; predict.
    Read,
    /// Also insert, update, delete documents and retry parked documents.
    Write,
    /// Also create, list and revoke tokens.
    Admin,
}

impl std::str::FromStr for Scope {
    type Err = Error;
    fn from_str(s: &str) -> Result<Scope> {
        match s {
            "read" => Ok(Scope::Read),
            "write" => Ok(Scope::Write),
            "admin" => Ok(Scope::Admin),
            other => Err(Error::InvalidData {
                path: "scope".into(),
                reason: format!("unknown scope {other:?}: expected read, write or admin"),
            }),
        }
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::Admin => "admin",
        })
    }
}

/// A stored token, without its secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TokenInfo {
    /// Its name (an identifier: letters, digits, `_`, `-`, `.`).
    pub name: String,
    /// What it may do.
    pub scope: Scope,
    /// When it was created, in seconds since the Unix epoch.
    pub created: f64,
    /// Hex SHA-256 of the token: never the token itself.
    #[serde(skip_serializing_if = "String::is_empty", default)]
    #[schema(ignore)]
    pub hash: String,
}

fn hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    if s.len() != 64 {
        return None;
    }
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Creates a token and returns it: the only time it is ever seen. The name must be new.
pub fn create(db: &Datalayer, name: &str, scope: Scope) -> Result<String> {
    vigil::names::validate_identifier(name).map_err(|e| match e {
        Error::InvalidName { name, reason, .. } => Error::InvalidName {
            kind: "token",
            name,
            reason,
        },
        other => other,
    })?;
    if !db.show_versions(TOKEN, name)?.is_empty() {
        return Err(Error::InvalidData {
            path: "name".into(),
            reason: format!("a token named `{name}` exists; revoke it first"),
        });
    }
    let mut secret = [0u8; 32];
    rand::rng().fill_bytes(&mut secret);
    use base64::Engine as _;
    let token = format!(
        "{PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret)
    );
    let info = TokenInfo {
        name: name.into(),
        scope,
        created: vigil::listen::now(),
        hash: hex(&hash(&token)),
    };
    let record = serde_json::to_value(&info).map_err(|e| Error::InvalidData {
        path: "token".into(),
        reason: e.to_string(),
    })?;
    db.backend().put_component(TOKEN, name, &record)?;
    Ok(token)
}

/// Every stored token (hashes included), by name.
pub fn list(db: &Datalayer) -> Result<Vec<TokenInfo>> {
    let mut out = Vec::new();
    for c in db.show_all(TOKEN)? {
        let stored = db.show_record(TOKEN, &c.identifier, None)?;
        let info: TokenInfo =
            serde_json::from_value(stored.record).map_err(|e| Error::Corrupt {
                collection: "vigil_components".into(),
                reason: format!("token `{}`: {e}", c.identifier),
            })?;
        out.push(info);
    }
    Ok(out)
}

/// Revokes a token by name; false if there was none.
pub fn revoke(db: &Datalayer, name: &str) -> Result<bool> {
    Ok(db.remove(TOKEN, name, None)? > 0)
}

/// The stored token a presented secret belongs to, if any. Every stored hash is compared in
/// constant time, and all of them are compared whatever matches, so timing tells nothing
/// about which bytes were right.
pub fn verify<'a>(tokens: &'a [TokenInfo], presented: &str) -> Option<&'a TokenInfo> {
    let presented = hash(presented);
    let mut found = None;
    for t in tokens {
        // A hash that does not parse cannot match; it is corrupt, not a secret.
        let stored = unhex(&t.hash).unwrap_or([0xff; 32]);
        if bool::from(stored.ct_eq(&presented)) {
            found = Some(t);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_stored_as_hashes_and_verified() {
        let db = vigil::connect("sqlite::memory:").unwrap();
        let secret = create(&db, "ci", Scope::Write).unwrap();
        assert!(secret.starts_with(PREFIX) && secret.len() > 40);
        let stored = list(&db).unwrap();
        assert_eq!(stored.len(), 1);
        assert_ne!(stored[0].hash, secret);
        assert!(!serde_json::to_string(&stored).unwrap().contains(&secret));
        assert_eq!(
            verify(&stored, &secret).map(|t| t.scope),
            Some(Scope::Write)
        );
        assert!(verify(&stored, "vgl_wrong").is_none());
        // Names are unique and validated; revoking removes the token for good.
        assert!(create(&db, "ci", Scope::Read).is_err());
        assert!(create(&db, "bad name", Scope::Read).is_err());
        assert!(revoke(&db, "ci").unwrap());
        assert!(!revoke(&db, "ci").unwrap());
        assert!(verify(&list(&db).unwrap(), &secret).is_none());
    }
}
