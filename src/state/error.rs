//! What can go wrong with the state file, worded for the person who must fix it.

use std::path::PathBuf;

/// A failure to open, read or write the state store.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Another process holds the file's lock.
    #[error(
        "state file {} is locked by another process: is another cloudwarden running with the same state.path?",
        path.display()
    )]
    Locked {
        /// The state file.
        path: PathBuf,
    },
    /// The file is not a cloudwarden state file, or is damaged.
    #[error(
        "state file {} is corrupt or not a state file ({detail}); move it aside to start with empty state, which forgets checkpoints and undelivered alerts",
        path.display()
    )]
    Corrupt {
        /// The state file.
        path: PathBuf,
        /// What the storage engine reported.
        detail: String,
    },
    /// The file was written in an older storage format than this build reads.
    #[error(
        "state file {} was written by an older cloudwarden in an older storage format ({detail}); see \"Upgrading the state file\" in CHANGELOG.md: let the older version deliver its outbox, stop it, move the file aside and start this one",
        path.display()
    )]
    OlderFormat {
        /// The state file.
        path: PathBuf,
        /// What the storage engine reported.
        detail: String,
    },
    /// The file was written by a newer cloudwarden.
    #[error(
        "state file {} has schema version {found}, newer than this cloudwarden understands ({supported}); run a newer version",
        path.display()
    )]
    Incompatible {
        /// The state file.
        path: PathBuf,
        /// The schema version in the file.
        found: u64,
        /// The newest schema version this build knows.
        supported: u64,
    },
    /// The file or its folder could not be created, opened or read.
    #[error("cannot open state file {}: {source}", path.display())]
    Io {
        /// The state file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A transaction failed after the file was open.
    #[error("state store {operation} failed: {source}")]
    Storage {
        /// What was being done, such as "commit".
        operation: &'static str,
        /// redb's error.
        source: redb::Error,
    },
    /// A stored value could not be encoded or decoded.
    #[error("state record {key} could not be {action}: {source}")]
    Codec {
        /// The record's key.
        key: String,
        /// "encoded" or "decoded".
        action: &'static str,
        /// serde_json's error.
        source: serde_json::Error,
    },
}

impl StateError {
    /// Wraps a redb error raised while doing `operation`.
    pub(super) fn storage(operation: &'static str, source: impl Into<redb::Error>) -> Self {
        StateError::Storage {
            operation,
            source: source.into(),
        }
    }
}
