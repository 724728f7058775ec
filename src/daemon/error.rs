//! Why the daemon could not start or stop cleanly, and the exit code for each.

use std::time::Duration;

use crate::aws::AwsSetupError;
use crate::state::StateError;
use crate::telemetry::admin::BindError;

/// A failure that ends the daemon.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The state store could not be opened.
    #[error(transparent)]
    State(#[from] StateError),
    /// The admin server could not listen.
    #[error(transparent)]
    Bind(#[from] BindError),
    /// The AWS configuration is incomplete.
    #[error(transparent)]
    Aws(#[from] AwsSetupError),
    /// Metrics could not be registered (a bug: names are fixed at build time).
    #[error("cannot register metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// Signal handlers could not be installed.
    #[error("cannot listen for signals: {0}")]
    Signals(std::io::Error),
    /// The admin server stopped with an error.
    #[error("the admin server failed: {0}")]
    Admin(std::io::Error),
    /// A task of the daemon panicked or was cancelled.
    #[error("task {task} ended abnormally: {detail}")]
    Task {
        /// Which task.
        task: &'static str,
        /// What happened to it.
        detail: String,
    },
    /// A critical task failed while the daemon ran, and the daemon stopped.
    #[error("critical task {task} failed: {detail}")]
    Failed {
        /// Which task.
        task: String,
        /// Why it failed.
        detail: String,
    },
    /// An SNS topic does not exist or may not be used.
    #[error("alert topics cannot be used: {}", problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Topics {
        /// What is wrong with each.
        problems: Vec<crate::alerts::topics::TopicProblem>,
    },
    /// Shutdown took longer than `daemon.shutdown_grace`.
    #[error(
        "shutdown did not finish within daemon.shutdown_grace ({}); still running: {}",
        humantime::format_duration(*grace),
        pending.join(", ")
    )]
    ShutdownTimeout {
        /// The configured grace period.
        grace: Duration,
        /// What had not finished.
        pending: Vec<String>,
    },
}

impl DaemonError {
    /// 78 (EX_CONFIG) when the configuration must change, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            DaemonError::Aws(AwsSetupError::NoRegion) | DaemonError::Topics { .. } => {
                crate::EXIT_CONFIG
            }
            _ => 1,
        }
    }
}
