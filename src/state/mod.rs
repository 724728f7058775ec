//! Embedded state: checkpoints and keyed records with expiry, in one redb file.
//!
//! Sources keep their resume points here, detection keeps its open windows,
//! and the alert outbox keeps alerts until SNS has accepted them. Every write
//! is a committed (fsynced) transaction: what a caller was told is stored
//! survives a kill -9. The file is locked while open, so two daemons can never
//! share one state file.

mod error;
mod store;
mod tables;
mod txn;

pub use error::StateError;
pub use store::StateStore;
pub use txn::WriteTxn;
