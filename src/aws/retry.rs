//! The one place that decides whether an AWS failure is worth retrying, and
//! how long to wait first.
//!
//! Throttling, 5xx responses, timeouts and connection failures are
//! retriable; everything else (access denied, validation errors, a missing
//! resource) is permanent until someone changes something. Waits grow
//! exponentially to a cap, with jitter so that many callers do not retry in
//! step.

use std::fmt;
use std::time::Duration;

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// What a failure means for the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// AWS asked us to slow down: retry after a wait.
    Throttled,
    /// A passing fault (5xx, timeout, connection): retry after a wait.
    Transient,
    /// Retrying the same call will fail the same way.
    Permanent,
}

impl ErrorClass {
    /// Whether retrying the same call may succeed.
    pub fn is_retriable(self) -> bool {
        self != ErrorClass::Permanent
    }

    /// The lowercase name used in logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Throttled => "throttled",
            ErrorClass::Transient => "transient",
            ErrorClass::Permanent => "permanent",
        }
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error codes AWS services use for throttling.
const THROTTLING_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "TransactionInProgressException",
    "RequestLimitExceeded",
    "BandwidthLimitExceeded",
    "LimitExceededException",
    "RequestThrottled",
    "SlowDown",
    "PriorRequestNotComplete",
    "EC2ThrottledException",
];

/// Error codes AWS services use for their own passing faults.
const TRANSIENT_CODES: &[&str] = &[
    "RequestTimeout",
    "RequestTimeoutException",
    "InternalError",
    "InternalFailure",
    "InternalServerError",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "IDPCommunicationError",
];

/// Classifies a failed SDK call.
pub fn classify<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> ErrorClass {
    match err {
        SdkError::ServiceError(service_err) => {
            let status = service_err.raw().status().as_u16();
            classify_response(service_err.err().code(), status)
        }
        SdkError::ConstructionFailure(_) => ErrorClass::Permanent,
        // Timeouts, connection failures and truncated responses pass.
        _ => ErrorClass::Transient,
    }
}

/// Classifies an error response by its AWS error code and HTTP status.
pub fn classify_response(code: Option<&str>, status: u16) -> ErrorClass {
    match code {
        Some(code) if THROTTLING_CODES.contains(&code) => ErrorClass::Throttled,
        _ if status == 429 => ErrorClass::Throttled,
        Some(code) if TRANSIENT_CODES.contains(&code) => ErrorClass::Transient,
        _ if status >= 500 => ErrorClass::Transient,
        _ => ErrorClass::Permanent,
    }
}

/// Capped exponential backoff with jitter.
///
/// The n-th wait is drawn from `[d/2, d]` where `d = min(cap, base × 2ⁿ)`:
/// never shorter than half the nominal wait, so a flood of failures cannot
/// turn into a tight loop, and never longer than `cap`.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    attempt: u32,
}

impl Backoff {
    /// Waits start near `base` and never exceed `cap`.
    pub fn new(base: Duration, cap: Duration) -> Self {
        Backoff {
            base,
            cap: cap.max(base),
            attempt: 0,
        }
    }

    /// The wait before the next attempt; each call lengthens the following one.
    pub fn next_delay(&mut self) -> Duration {
        let factor = 2u32.saturating_pow(self.attempt.min(31));
        let nominal = self.base.saturating_mul(factor).min(self.cap);
        self.attempt = self.attempt.saturating_add(1);
        let half = nominal / 2;
        let jitter_nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
        half + Duration::from_nanos(fastrand::u64(0..=jitter_nanos))
    }

    /// How many waits were handed out since the last success.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    /// Starts again from `base` after a success.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use aws_smithy_runtime_api::client::result::{ConnectorError, SdkError};
    use aws_smithy_runtime_api::http::{Response, StatusCode};
    use aws_smithy_types::body::SdkBody;
    use aws_smithy_types::error::ErrorMetadata;

    use super::*;

    fn service_error(code: &str, status: u16) -> SdkError<ErrorMetadata, HttpResponse> {
        let meta = ErrorMetadata::builder().code(code).message("m").build();
        let response = Response::new(StatusCode::try_from(status).unwrap(), SdkBody::empty());
        SdkError::service_error(meta, response)
    }

    #[test]
    fn throttling_5xx_and_transport_failures_are_retriable_and_the_rest_is_not() {
        assert_eq!(
            classify(&service_error("ThrottlingException", 400)),
            ErrorClass::Throttled
        );
        assert_eq!(
            classify(&service_error("Whatever", 429)),
            ErrorClass::Throttled
        );
        assert_eq!(
            classify(&service_error("InternalFailure", 500)),
            ErrorClass::Transient
        );
        assert_eq!(
            classify(&service_error("Unknown", 503)),
            ErrorClass::Transient
        );
        assert_eq!(
            classify(&service_error("AccessDenied", 403)),
            ErrorClass::Permanent
        );
        assert_eq!(
            classify(&service_error("ValidationError", 400)),
            ErrorClass::Permanent
        );
        let timeout: SdkError<ErrorMetadata, HttpResponse> =
            SdkError::timeout_error("operation timed out");
        assert_eq!(classify(&timeout), ErrorClass::Transient);
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let dispatch: SdkError<ErrorMetadata, HttpResponse> =
            SdkError::dispatch_failure(ConnectorError::io(Box::new(io)));
        assert_eq!(classify(&dispatch), ErrorClass::Transient);
        assert!(ErrorClass::Throttled.is_retriable() && !ErrorClass::Permanent.is_retriable());
    }

    #[test]
    fn waits_grow_to_the_cap_with_jitter_and_reset_after_success() {
        let base = Duration::from_millis(100);
        let cap = Duration::from_secs(5);
        let mut backoff = Backoff::new(base, cap);
        let waits: Vec<Duration> = (0..20).map(|_| backoff.next_delay()).collect();
        for (n, wait) in waits.iter().enumerate() {
            let nominal = base.saturating_mul(2u32.saturating_pow(n as u32)).min(cap);
            assert!(
                *wait >= nominal / 2 && *wait <= nominal,
                "wait {n}: {wait:?} vs {nominal:?}"
            );
        }
        assert!(waits[19] >= cap / 2);
        assert_eq!(backoff.attempts(), 20);
        backoff.reset();
        assert!(backoff.next_delay() <= base);
    }
}
