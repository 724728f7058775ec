//! A write transaction: several changes that commit together or not at all.

use std::time::SystemTime;

use redb::ReadableTable;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::StateError;
use super::tables::{CHECKPOINTS, EXPIRY, RECORDS, decode, millis};

/// Changes staged in one transaction; `StateStore::write` commits them.
pub struct WriteTxn {
    pub(super) inner: redb::WriteTransaction,
}

impl WriteTxn {
    /// Sets the checkpoint of `scope`.
    pub fn set_checkpoint<T: Serialize>(
        &mut self,
        scope: &str,
        value: &T,
    ) -> Result<(), StateError> {
        let bytes = encode(scope, value)?;
        let mut table = self
            .inner
            .open_table(CHECKPOINTS)
            .map_err(|e| StateError::storage("open checkpoints", e))?;
        table
            .insert(scope, bytes.as_slice())
            .map_err(|e| StateError::storage("write checkpoint", e))?;
        Ok(())
    }

    /// Stores `value` under `(namespace, key)`, replacing any earlier record;
    /// `expires_at` of `None` keeps it until removed.
    pub fn put_record<T: Serialize>(
        &mut self,
        namespace: &str,
        key: &str,
        value: &T,
        expires_at: Option<SystemTime>,
    ) -> Result<(), StateError> {
        let bytes = encode(key, value)?;
        self.remove_record(namespace, key)?;
        let expiry = expires_at.map_or(0, millis);
        let mut records = self
            .inner
            .open_table(RECORDS)
            .map_err(|e| StateError::storage("open records", e))?;
        records
            .insert((namespace, key), (expiry, bytes.as_slice()))
            .map_err(|e| StateError::storage("write record", e))?;
        if expiry != 0 {
            let mut index = self
                .inner
                .open_table(EXPIRY)
                .map_err(|e| StateError::storage("open expiry index", e))?;
            index
                .insert((expiry, namespace, key), ())
                .map_err(|e| StateError::storage("write expiry index", e))?;
        }
        Ok(())
    }

    /// The record under `(namespace, key)` as this transaction sees it,
    /// with its expiry (ms since the epoch, 0 for never).
    pub fn record<T: DeserializeOwned>(
        &mut self,
        namespace: &str,
        key: &str,
    ) -> Result<Option<(T, u64)>, StateError> {
        let records = self
            .inner
            .open_table(RECORDS)
            .map_err(|e| StateError::storage("open records", e))?;
        let entry = records
            .get((namespace, key))
            .map_err(|e| StateError::storage("read record", e))?;
        let Some(entry) = entry else {
            return Ok(None);
        };
        let (expiry, bytes) = entry.value();
        Ok(Some((decode(key, bytes)?, expiry)))
    }

    /// Every record of `namespace` as this transaction sees it, in key
    /// order, expired or not, at most `limit` of them.
    pub fn records<T: DeserializeOwned>(
        &mut self,
        namespace: &str,
        limit: usize,
    ) -> Result<Vec<(String, T)>, StateError> {
        let records = self
            .inner
            .open_table(RECORDS)
            .map_err(|e| StateError::storage("open records", e))?;
        let range = records
            .range((namespace, "")..)
            .map_err(|e| StateError::storage("scan records", e))?;
        let mut out = Vec::new();
        for entry in range {
            let (k, v) = entry.map_err(|e| StateError::storage("scan records", e))?;
            let (ns, key) = k.value();
            if ns != namespace || out.len() >= limit {
                break;
            }
            out.push((key.to_owned(), decode(key, v.value().1)?));
        }
        Ok(out)
    }

    /// How many records `namespace` holds as this transaction sees them, expired or not.
    pub fn count(&mut self, namespace: &str) -> Result<usize, StateError> {
        let records = self
            .inner
            .open_table(RECORDS)
            .map_err(|e| StateError::storage("open records", e))?;
        let range = records
            .range((namespace, "")..)
            .map_err(|e| StateError::storage("scan records", e))?;
        let mut n = 0;
        for entry in range {
            let (k, _) = entry.map_err(|e| StateError::storage("scan records", e))?;
            if k.value().0 != namespace {
                break;
            }
            n += 1;
        }
        Ok(n)
    }

    /// Removes the record under `(namespace, key)`; returns whether there was one.
    pub fn remove_record(&mut self, namespace: &str, key: &str) -> Result<bool, StateError> {
        let mut records = self
            .inner
            .open_table(RECORDS)
            .map_err(|e| StateError::storage("open records", e))?;
        let removed = records
            .remove((namespace, key))
            .map_err(|e| StateError::storage("remove record", e))?
            .map(|old| old.value().0);
        drop(records);
        let Some(expiry) = removed else {
            return Ok(false);
        };
        if expiry != 0 {
            let mut index = self
                .inner
                .open_table(EXPIRY)
                .map_err(|e| StateError::storage("open expiry index", e))?;
            index
                .remove((expiry, namespace, key))
                .map_err(|e| StateError::storage("remove expiry index", e))?;
        }
        Ok(true)
    }

    /// Removes every record that expired at or before `now`; returns how many.
    pub fn purge_expired(&mut self, now: SystemTime) -> Result<usize, StateError> {
        let now = millis(now);
        let mut due = Vec::new();
        {
            let index = self
                .inner
                .open_table(EXPIRY)
                .map_err(|e| StateError::storage("open expiry index", e))?;
            let range = index
                .range(..(now.saturating_add(1), "", ""))
                .map_err(|e| StateError::storage("scan expiry index", e))?;
            for entry in range {
                let (key, _) = entry.map_err(|e| StateError::storage("scan expiry index", e))?;
                let (_, namespace, key) = key.value();
                due.push((namespace.to_owned(), key.to_owned()));
            }
        }
        for (namespace, key) in &due {
            self.remove_record(namespace, key)?;
        }
        Ok(due.len())
    }
}

pub(super) fn encode<T: Serialize>(key: &str, value: &T) -> Result<Vec<u8>, StateError> {
    serde_json::to_vec(value).map_err(|source| StateError::Codec {
        key: key.to_owned(),
        action: "encoded",
        source,
    })
}
