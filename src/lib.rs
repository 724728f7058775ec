//! cloudwarden watches AWS accounts for security events.
//!
//! The module tree is the pipeline, read top to bottom:
//!
//! ```text
//! config ─▶ daemon ─┬─ sources ──▶ pipeline (bounded) ──▶ detection ──▶ alerts
//!                   ├─ state      (checkpoints, windows, outbox: one redb file)
//!                   ├─ telemetry  (metrics, /healthz, /readyz, logs)
//!                   └─ aws        (one SDK configuration, one retry policy)
//! ```
//!
//! - [`cli`] parses the command line and maps every outcome to an exit code.
//! - [`config`] layers defaults, the TOML file and the environment, and
//!   validates everything before anything starts.
//! - [`daemon`] starts the tasks in order and owns the one shutdown path.
//! - [`pipeline`] is the bounded channel events travel through.
//! - [`detection`] turns events into alerts.
//! - [`posture`] checks trails, security groups and IAM, and keeps declared
//!   settings in place.
//! - [`response`] acts on alerts and findings: dry run first, guarded,
//!   journaled.
//! - [`state`] is the embedded store every stateful part uses.
//! - [`telemetry`] is metrics, health, readiness and logging.
//! - [`aws`] configures SDK clients and decides what is retriable.
//!
//! ARCHITECTURE.md at the repository root has the longer tour and the
//! invariants the code keeps.

// A panic in the daemon is a lost event or alert: the library justifies
// every unwrap, expect and panic, or avoids it. Tests are exempt (clippy.toml).
#![warn(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod alarms;
pub mod alerts;
pub mod aws;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod detection;
pub mod pipeline;
pub mod posture;
pub mod records;
pub mod replay;
pub mod response;
pub mod rules;
pub mod sources;
pub mod state;
pub mod telemetry;

/// The exit code for a configuration error (`EX_CONFIG` in sysexits.h).
pub const EXIT_CONFIG: u8 = 78;
