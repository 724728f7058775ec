//! Who cloudwarden is in AWS: the account it watches, for logs and metrics.

use aws_config::SdkConfig;

use super::AwsError;
use crate::telemetry::metrics::AwsMetrics;

/// The caller's account and principal, as STS reports them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerIdentity {
    /// The 12-digit account id.
    pub account: String,
    /// The principal's ARN.
    pub arn: String,
}

/// Asks STS `GetCallerIdentity`, which needs no IAM permission.
pub async fn caller_identity(
    sdk: &SdkConfig,
    metrics: &AwsMetrics,
) -> Result<CallerIdentity, AwsError> {
    const SERVICE: &str = "sts";
    const OPERATION: &str = "GetCallerIdentity";
    metrics.calls.with_label_values(&[SERVICE, OPERATION]).inc();
    let client = aws_sdk_sts::Client::new(sdk);
    match client.get_caller_identity().send().await {
        Ok(out) => Ok(CallerIdentity {
            account: out.account().unwrap_or_default().to_owned(),
            arn: out.arn().unwrap_or_default().to_owned(),
        }),
        Err(err) => {
            let err = AwsError::from_sdk(SERVICE, OPERATION, &err);
            metrics
                .errors
                .with_label_values(&[SERVICE, OPERATION, &err.code])
                .inc();
            Err(err)
        }
    }
}
