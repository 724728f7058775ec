//! AWS access in one place: how clients are configured, which errors are
//! worth retrying, and how long to wait before trying again.
//!
//! Every client in cloudwarden is built from the one [`aws_config::SdkConfig`]
//! that [`sdk_config`] returns, so `aws.endpoint_url`, the Region, the profile,
//! timeouts and the SDK's own retries apply everywhere alike. Loops that keep
//! calling AWS (sources, the alert outbox, reconcilers) ask [`retry::classify`]
//! what a failure means and wait as [`retry::Backoff`] says.

mod clients;
mod error;
mod identity;
pub mod rate;
pub mod retry;
mod sdk;

pub use clients::{Clients, SERVICES};
pub use error::AwsError;
pub use identity::{CallerIdentity, caller_identity};
pub use sdk::{AwsSetupError, sdk_config, sdk_config_from};
