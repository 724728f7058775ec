//! Who cloudwarden is in AWS: the account it watches, for logs and metrics,
//! and whose buckets `s3_sqs` reads by default.

use super::{AwsError, Clients};

/// The caller's account and principal, as STS reports them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerIdentity {
    /// The 12-digit account id.
    pub account: String,
    /// The principal's ARN.
    pub arn: String,
}

/// Asks STS `GetCallerIdentity`, which needs no IAM permission.
pub async fn caller_identity(clients: &Clients) -> Result<CallerIdentity, AwsError> {
    let call = clients.sts().get_caller_identity().send();
    let out = clients.call("sts", "GetCallerIdentity", call).await?;
    Ok(CallerIdentity {
        account: out.account().unwrap_or_default().to_owned(),
        arn: out.arn().unwrap_or_default().to_owned(),
    })
}
