//! The store itself: opening the file safely and reading and writing through it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Instant, SystemTime};

use redb::{Database, DatabaseError, ReadableDatabase, ReadableTable, StorageError};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::StateError;
use super::tables::{CHECKPOINTS, META, RECORDS, SCHEMA_VERSION, decode, millis};
use super::txn::WriteTxn;
use crate::telemetry::metrics::StateMetrics;

/// The open state file. Cheap to clone; all clones share one database.
///
/// Calls block on disk I/O (a commit is an fsync): async code calls them
/// from `tokio::task::spawn_blocking` when it is on a hot path.
#[derive(Clone)]
pub struct StateStore {
    db: Arc<Database>,
    path: PathBuf,
    metrics: Option<StateMetrics>,
    /// Set by [`StateStore::fail_writes`]: every later write fails.
    failing: Arc<AtomicBool>,
}

impl std::fmt::Debug for StateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// The most the store keeps of the file in memory.
const CACHE_BYTES: usize = 16 * 1024 * 1024;

/// Creates `path` readable and writable by its owner only (0600), unless it exists.
fn create_private(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(err) => Err(err),
    }
}

impl StateStore {
    /// Opens `path`, creating it (and its folder) when absent.
    pub fn open(path: &Path) -> Result<Self, StateError> {
        let io = |source| StateError::Io {
            path: path.to_owned(),
            source,
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        if path.is_dir() {
            return Err(io(std::io::Error::other("it is a directory")));
        }
        // The file holds alerts and account details: only its owner may read
        // it. redb initializes an empty file, so create it with that mode.
        create_private(path).map_err(io)?;
        // redb caches up to 1 GiB of pages by default, which would let the
        // daemon's memory grow with the state it has written.
        let db = redb::Builder::new()
            .set_cache_size(CACHE_BYTES)
            .create(path)
            .map_err(|err| open_error(path, err))?;
        let store = StateStore {
            db: Arc::new(db),
            path: path.to_owned(),
            metrics: None,
            failing: Arc::new(AtomicBool::new(false)),
        };
        store.check_schema()?;
        Ok(store)
    }

    /// Records commits and purges in `metrics` from now on.
    pub fn with_metrics(mut self, metrics: StateMetrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// The state file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stamps a new file with this build's schema version, and refuses a newer one.
    fn check_schema(&self) -> Result<(), StateError> {
        let found = self.write(|txn| {
            let mut meta = txn
                .inner
                .open_table(META)
                .map_err(|e| StateError::storage("open meta", e))?;
            let found = meta
                .get("schema_version")
                .map_err(|e| StateError::storage("read schema version", e))?
                .map(|v| v.value());
            if found.is_none() {
                meta.insert("schema_version", SCHEMA_VERSION)
                    .map_err(|e| StateError::storage("write schema version", e))?;
            }
            Ok(found)
        })?;
        match found {
            Some(found) if found > SCHEMA_VERSION => Err(StateError::Incompatible {
                path: self.path.clone(),
                found,
                supported: SCHEMA_VERSION,
            }),
            _ => Ok(()),
        }
    }

    /// Runs `stage` in one write transaction and commits it; nothing is
    /// written when `stage` fails.
    pub fn write<T>(
        &self,
        stage: impl FnOnce(&mut WriteTxn) -> Result<T, StateError>,
    ) -> Result<T, StateError> {
        let started = Instant::now();
        let result = self.write_inner(stage);
        if let Some(metrics) = &self.metrics {
            let outcome = if result.is_ok() { "ok" } else { "error" };
            metrics.commits.with_label_values(&[outcome]).inc();
            metrics
                .commit_seconds
                .observe(started.elapsed().as_secs_f64());
        }
        result
    }

    /// Makes every later write of this store (and its clones) fail as a
    /// full disk would, before anything is written. A fault for tests: the
    /// daemon arms it only when `CLOUDWARDEN_TEST_FAIL_STATE_WRITES` is set.
    pub fn fail_writes(&self) {
        self.failing.store(true, Ordering::Relaxed);
    }

    fn write_inner<T>(
        &self,
        stage: impl FnOnce(&mut WriteTxn) -> Result<T, StateError>,
    ) -> Result<T, StateError> {
        if self.failing.load(Ordering::Relaxed) {
            return Err(StateError::storage(
                "commit",
                std::io::Error::new(
                    std::io::ErrorKind::StorageFull,
                    "injected write failure (CLOUDWARDEN_TEST_FAIL_STATE_WRITES)",
                ),
            ));
        }
        let inner = self
            .db
            .begin_write()
            .map_err(|e| StateError::storage("begin write", e))?;
        let mut txn = WriteTxn { inner };
        let value = stage(&mut txn)?;
        txn.inner
            .commit()
            .map_err(|e| StateError::storage("commit", e))?;
        Ok(value)
    }

    /// The checkpoint of `scope`, if one was set.
    pub fn checkpoint<T: DeserializeOwned>(&self, scope: &str) -> Result<Option<T>, StateError> {
        let txn = self
            .db
            .begin_read()
            .map_err(|e| StateError::storage("begin read", e))?;
        let table = match txn.open_table(CHECKPOINTS) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(StateError::storage("open checkpoints", e)),
        };
        let bytes = table
            .get(scope)
            .map_err(|e| StateError::storage("read checkpoint", e))?;
        bytes.map(|b| decode(scope, b.value())).transpose()
    }

    /// Sets the checkpoint of `scope` in its own transaction.
    pub fn set_checkpoint<T: Serialize>(&self, scope: &str, value: &T) -> Result<(), StateError> {
        self.write(|txn| txn.set_checkpoint(scope, value))
    }

    /// The record under `(namespace, key)`, unless absent or expired at `now`.
    pub fn record<T: DeserializeOwned>(
        &self,
        namespace: &str,
        key: &str,
        now: SystemTime,
    ) -> Result<Option<T>, StateError> {
        let txn = self
            .db
            .begin_read()
            .map_err(|e| StateError::storage("begin read", e))?;
        let table = match txn.open_table(RECORDS) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(StateError::storage("open records", e)),
        };
        let entry = table
            .get((namespace, key))
            .map_err(|e| StateError::storage("read record", e))?;
        let Some(entry) = entry else {
            return Ok(None);
        };
        let (expires, bytes) = entry.value();
        if expires != 0 && expires <= millis(now) {
            return Ok(None);
        }
        decode(key, bytes).map(Some)
    }

    /// The live records of `namespace` in key order, at most `limit` of them.
    pub fn records<T: DeserializeOwned>(
        &self,
        namespace: &str,
        now: SystemTime,
        limit: usize,
    ) -> Result<Vec<(String, T)>, StateError> {
        self.records_after(namespace, "", now, limit)
    }

    /// Like [`StateStore::records`], only those whose key sorts after `after`
    /// (`""`: from the first).
    pub fn records_after<T: DeserializeOwned>(
        &self,
        namespace: &str,
        after: &str,
        now: SystemTime,
        limit: usize,
    ) -> Result<Vec<(String, T)>, StateError> {
        let txn = self
            .db
            .begin_read()
            .map_err(|e| StateError::storage("begin read", e))?;
        let table = match txn.open_table(RECORDS) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(StateError::storage("open records", e)),
        };
        let now = millis(now);
        let mut out = Vec::new();
        let range = table
            .range((namespace, after)..)
            .map_err(|e| StateError::storage("scan records", e))?;
        for entry in range {
            if out.len() >= limit {
                break;
            }
            let (k, v) = entry.map_err(|e| StateError::storage("scan records", e))?;
            let (ns, key) = k.value();
            if ns != namespace {
                break;
            }
            if !after.is_empty() && key == after {
                continue;
            }
            let (expires, bytes) = v.value();
            if expires == 0 || expires > now {
                out.push((key.to_owned(), decode(key, bytes)?));
            }
        }
        Ok(out)
    }

    /// How many records `namespace` holds, expired or not.
    pub fn count(&self, namespace: &str) -> Result<usize, StateError> {
        let txn = self
            .db
            .begin_read()
            .map_err(|e| StateError::storage("begin read", e))?;
        let table = match txn.open_table(RECORDS) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(0),
            Err(e) => return Err(StateError::storage("open records", e)),
        };
        let range = table
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

    /// Stores a record in its own transaction; see [`WriteTxn::put_record`].
    pub fn put_record<T: Serialize>(
        &self,
        namespace: &str,
        key: &str,
        value: &T,
        expires_at: Option<SystemTime>,
    ) -> Result<(), StateError> {
        self.write(|txn| txn.put_record(namespace, key, value, expires_at))
    }

    /// Removes a record in its own transaction; returns whether there was one.
    pub fn remove_record(&self, namespace: &str, key: &str) -> Result<bool, StateError> {
        self.write(|txn| txn.remove_record(namespace, key))
    }

    /// Removes every record expired at `now`; returns how many.
    pub fn purge_expired(&self, now: SystemTime) -> Result<usize, StateError> {
        let purged = self.write(|txn| txn.purge_expired(now))?;
        if let Some(metrics) = &self.metrics {
            metrics.purged.inc_by(purged as u64);
        }
        Ok(purged)
    }
}

/// Maps redb's open errors to the three a user can act on: locked, corrupt, I/O.
fn open_error(path: &Path, err: DatabaseError) -> StateError {
    let path = path.to_owned();
    match err {
        DatabaseError::DatabaseAlreadyOpen | DatabaseError::LockProtocolMismatch => {
            StateError::Locked { path }
        }
        DatabaseError::Storage(StorageError::Io(source))
            if source.kind() == std::io::ErrorKind::InvalidData =>
        {
            StateError::Corrupt {
                path,
                detail: source.to_string(),
            }
        }
        DatabaseError::Storage(StorageError::Io(source)) => StateError::Io { path, source },
        DatabaseError::Storage(StorageError::Corrupted(detail)) => {
            StateError::Corrupt { path, detail }
        }
        DatabaseError::UpgradeRequired(version) => StateError::OlderFormat {
            path,
            detail: format!("storage file format {version}"),
        },
        other => StateError::Corrupt {
            path,
            detail: other.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn store() -> (tempfile::TempDir, StateStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(&dir.path().join("sub/state.redb")).unwrap();
        (dir, store)
    }

    #[test]
    fn checkpoints_survive_reopening() {
        let (dir, store) = store();
        assert_eq!(store.checkpoint::<u64>("src").unwrap(), None);
        store.set_checkpoint("src", &42u64).unwrap();
        drop(store);
        let store = StateStore::open(&dir.path().join("sub/state.redb")).unwrap();
        assert_eq!(store.checkpoint::<u64>("src").unwrap(), Some(42));
    }

    #[test]
    fn the_state_file_is_created_readable_by_its_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let (dir, store) = store();
        let mode = std::fs::metadata(store.path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
        store.set_checkpoint("src", &1u64).unwrap();
        drop(store);
        let store = StateStore::open(&dir.path().join("sub/state.redb")).unwrap();
        assert_eq!(store.checkpoint::<u64>("src").unwrap(), Some(1));
    }

    #[test]
    fn records_expire_and_are_purged() {
        let (_dir, store) = store();
        let now = SystemTime::now();
        let later = now + Duration::from_secs(60);
        store.put_record("dedup", "a", &"x", Some(later)).unwrap();
        store.put_record("dedup", "b", &"y", None).unwrap();
        store
            .put_record("other", "a", &"z", Some(now + Duration::from_secs(1)))
            .unwrap();
        assert_eq!(
            store
                .record::<String>("dedup", "a", now)
                .unwrap()
                .as_deref(),
            Some("x")
        );
        assert_eq!(store.record::<String>("dedup", "a", later).unwrap(), None);
        let live: Vec<(String, String)> = store.records("dedup", now, 10).unwrap();
        assert_eq!(
            live,
            vec![("a".into(), "x".into()), ("b".into(), "y".into())]
        );
        assert_eq!(store.records::<String>("dedup", now, 1).unwrap().len(), 1);
        assert_eq!(store.purge_expired(later).unwrap(), 2);
        assert_eq!(store.records::<String>("dedup", now, 10).unwrap().len(), 1);
        assert_eq!(store.record::<String>("other", "a", now).unwrap(), None);
    }

    #[test]
    fn replacing_a_record_moves_its_expiry() {
        let (_dir, store) = store();
        let now = SystemTime::now();
        store
            .put_record("n", "k", &1, Some(now + Duration::from_secs(1)))
            .unwrap();
        store
            .put_record("n", "k", &2, Some(now + Duration::from_secs(100)))
            .unwrap();
        assert_eq!(
            store.purge_expired(now + Duration::from_secs(10)).unwrap(),
            0
        );
        assert_eq!(store.record::<i32>("n", "k", now).unwrap(), Some(2));
        assert!(store.remove_record("n", "k").unwrap());
        assert!(!store.remove_record("n", "k").unwrap());
    }

    #[test]
    fn a_failed_transaction_writes_nothing() {
        let (_dir, store) = store();
        let result: Result<(), StateError> = store.write(|txn| {
            txn.set_checkpoint("a", &1)?;
            Err(StateError::Locked { path: "x".into() })
        });
        assert!(result.is_err());
        assert_eq!(store.checkpoint::<i32>("a").unwrap(), None);
    }

    #[test]
    fn a_second_open_of_the_same_file_is_refused_as_locked() {
        let (dir, _store) = store();
        let err = StateStore::open(&dir.path().join("sub/state.redb")).unwrap_err();
        assert!(matches!(err, StateError::Locked { .. }), "{err}");
        assert!(err.to_string().contains("locked by another process"));
    }

    #[test]
    fn an_older_storage_format_is_named_as_such_with_the_upgrade_path() {
        let err = open_error(
            Path::new("/var/lib/cloudwarden/state.redb"),
            DatabaseError::UpgradeRequired(2),
        );
        let text = err.to_string();
        assert!(matches!(err, StateError::OlderFormat { .. }), "{err:?}");
        assert!(!text.contains("corrupt"), "{text}");
        assert!(
            text.contains("older storage format (storage file format 2)")
                && text.contains("CHANGELOG.md"),
            "{text}"
        );
    }

    #[test]
    fn a_file_that_is_not_a_state_file_is_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        std::fs::write(&path, vec![0x5a; 8192]).unwrap();
        let err = StateStore::open(&path).unwrap_err();
        assert!(matches!(err, StateError::Corrupt { .. }), "{err}");
        assert!(err.to_string().contains("move it aside"), "{err}");
    }

    #[test]
    fn a_directory_is_not_a_state_file() {
        let dir = tempfile::tempdir().unwrap();
        let err = StateStore::open(dir.path()).unwrap_err();
        assert!(matches!(err, StateError::Io { .. }), "{err}");
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let (dir, store) = store();
        store
            .write(|txn| {
                let mut meta = txn.inner.open_table(META).unwrap();
                meta.insert("schema_version", SCHEMA_VERSION + 1).unwrap();
                Ok(())
            })
            .unwrap();
        drop(store);
        let err = StateStore::open(&dir.path().join("sub/state.redb")).unwrap_err();
        assert!(matches!(err, StateError::Incompatible { .. }), "{err}");
    }
}
