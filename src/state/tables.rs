//! The tables of the state file and how times and values are stored in them.
//!
//! Both the store and its transactions read values through [`decode`], so
//! neither needs the other to know the encoding.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redb::TableDefinition;
use serde::de::DeserializeOwned;

use super::StateError;

/// The schema version this build writes; a file with a newer one is refused.
pub(super) const SCHEMA_VERSION: u64 = 1;

/// `name → value`: facts about the file itself, such as its schema version.
pub(super) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// `scope → JSON`: where each source resumes.
pub(super) const CHECKPOINTS: TableDefinition<&str, &[u8]> = TableDefinition::new("checkpoints");

/// `(namespace, key) → (expires at, JSON)`; an expiry of 0 never expires.
pub(super) const RECORDS: TableDefinition<(&str, &str), (u64, &[u8])> =
    TableDefinition::new("records");

/// `(expires at, namespace, key)`: the records that expire, soonest first.
pub(super) const EXPIRY: TableDefinition<(u64, &str, &str), ()> = TableDefinition::new("expiry");

/// Milliseconds since the Unix epoch, at least 1 so that 0 can mean "never".
pub(super) fn millis(time: SystemTime) -> u64 {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    u64::try_from(since.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// Reads a stored JSON value; `key` names it in the error.
pub(super) fn decode<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T, StateError> {
    serde_json::from_slice(bytes).map_err(|source| StateError::Codec {
        key: key.to_owned(),
        action: "decoded",
        source,
    })
}
