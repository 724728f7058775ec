//! One error type for a failed AWS call, carrying what a log line needs.

use std::fmt;

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use super::retry::{ErrorClass, classify};

/// A failed AWS call: which one, AWS's error code and message, and its class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsError {
    /// The service, such as `sts`.
    pub service: &'static str,
    /// The operation, such as `GetCallerIdentity`.
    pub operation: &'static str,
    /// AWS's error code (`AccessDenied`), or the kind of failure
    /// (`timeout`, `dispatch`, `response`) when no response carried one.
    pub code: String,
    /// AWS's message, or the transport's.
    pub message: String,
    /// Whether it is worth retrying.
    pub class: ErrorClass,
}

impl AwsError {
    /// Describes `err`, raised by `service`'s `operation`.
    pub fn from_sdk<E>(
        service: &'static str,
        operation: &'static str,
        err: &SdkError<E, HttpResponse>,
    ) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let (code, message) = match err {
            SdkError::ServiceError(service_err) => {
                let e = service_err.err();
                let status = service_err.raw().status().as_u16();
                (
                    e.code()
                        .map_or_else(|| format!("HTTP{status}"), str::to_owned),
                    e.message().unwrap_or("no message").to_owned(),
                )
            }
            SdkError::TimeoutError(_) => ("timeout".to_owned(), "the call timed out".to_owned()),
            SdkError::DispatchFailure(_) => ("dispatch".to_owned(), source_chain(err)),
            SdkError::ResponseError(_) => ("response".to_owned(), source_chain(err)),
            SdkError::ConstructionFailure(_) => ("construction".to_owned(), source_chain(err)),
            _ => ("unknown".to_owned(), source_chain(err)),
        };
        AwsError {
            service,
            operation,
            code,
            message,
            class: classify(err),
        }
    }
}

/// The error and its sources on one line, as `a: b: c`.
fn source_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(next) = source {
        text.push_str(": ");
        text.push_str(&next.to_string());
        source = next.source();
    }
    text
}

impl AwsError {
    /// A short account without AWS's message (which can name ARNs, keys
    /// and accounts): service, operation, code and class. For `/readyz`.
    pub fn short(&self) -> String {
        format!(
            "{} {} failing ({}, {})",
            self.service, self.operation, self.code, self.class
        )
    }
}

impl fmt::Display for AwsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} failed ({}, {}): {}",
            self.service, self.operation, self.code, self.class, self.message
        )
    }
}

impl std::error::Error for AwsError {}
