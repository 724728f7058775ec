//! Building the shared SDK configuration from `[aws]`.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, ConfigLoader, Region, SdkConfig};

use crate::config::AwsConfig;

/// Attempts the SDK makes for one call before the caller sees the error.
/// The SDK's standard mode already retries throttling, 5xx and timeouts with
/// jittered backoff; callers that loop add their own [`super::retry::Backoff`].
const SDK_MAX_ATTEMPTS: u32 = 3;

/// Why the SDK configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum AwsSetupError {
    /// Neither `aws.region` nor AWS's own chain named a Region.
    #[error(
        "no AWS Region: set aws.region in the configuration, or AWS_REGION, or a region in the AWS profile"
    )]
    NoRegion,
}

/// The SDK configuration for `settings`, with the default credential chain.
pub async fn sdk_config(settings: &AwsConfig) -> Result<SdkConfig, AwsSetupError> {
    sdk_config_from(aws_config::defaults(BehaviorVersion::latest()), settings).await
}

/// The SDK configuration for `settings` on top of `loader`, so that tests can
/// supply credentials without touching the process environment.
pub async fn sdk_config_from(
    mut loader: ConfigLoader,
    settings: &AwsConfig,
) -> Result<SdkConfig, AwsSetupError> {
    if let Some(region) = &settings.region {
        loader = loader.region(Region::new(region.clone()));
    }
    if let Some(profile) = &settings.profile {
        loader = loader.profile_name(profile);
    }
    if let Some(endpoint) = &settings.endpoint_url {
        loader = loader.endpoint_url(endpoint);
    }
    let config = loader
        .retry_config(RetryConfig::standard().with_max_attempts(SDK_MAX_ATTEMPTS))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(5))
                .read_timeout(Duration::from_secs(30))
                .operation_attempt_timeout(Duration::from_secs(60))
                .operation_timeout(Duration::from_secs(180))
                .build(),
        )
        .load()
        .await;
    if config.region().is_none() {
        return Err(AwsSetupError::NoRegion);
    }
    Ok(config)
}
