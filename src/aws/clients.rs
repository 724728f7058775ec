//! Service clients, all built from the one SDK configuration, and the
//! bookkeeping every AWS call shares: a call counted, an error classified
//! and counted by its AWS error code.

use std::collections::BTreeMap;
use std::future::Future;

use aws_config::retry::RetryConfig;
use aws_config::{Region, SdkConfig};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use super::AwsError;
use crate::telemetry::metrics::AwsMetrics;

/// Builds service clients and counts their calls.
#[derive(Clone)]
pub struct Clients {
    sdk: SdkConfig,
    endpoints: BTreeMap<String, String>,
    metrics: AwsMetrics,
}

impl std::fmt::Debug for Clients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Clients")
            .field("endpoints", &self.endpoints)
            .finish_non_exhaustive()
    }
}

/// Services whose endpoint `aws.endpoints` can override.
pub const SERVICES: [&str; 9] = [
    "cloudtrail",
    "cloudwatch",
    "ec2",
    "iam",
    "logs",
    "s3",
    "sns",
    "sqs",
    "sts",
];

impl Clients {
    /// Clients from `sdk`, with per-service endpoints (tests, emulators, VPC endpoints).
    pub fn new(
        sdk: SdkConfig,
        endpoints: BTreeMap<String, String>,
        metrics: AwsMetrics,
    ) -> Clients {
        Clients {
            sdk,
            endpoints,
            metrics,
        }
    }

    /// The shared SDK configuration.
    pub fn sdk(&self) -> &SdkConfig {
        &self.sdk
    }

    /// The home Region.
    pub fn home_region(&self) -> String {
        self.sdk
            .region()
            .map_or_else(|| "us-east-1".to_owned(), ToString::to_string)
    }

    fn endpoint(&self, service: &str) -> Option<&str> {
        self.endpoints.get(service).map(String::as_str)
    }

    /// A CloudTrail client for `region`.
    ///
    /// It does not retry by itself: the caller retries through its rate
    /// limiter, so that retries count against LookupEvents' limit too.
    pub fn cloudtrail(&self, region: &str) -> aws_sdk_cloudtrail::Client {
        let mut config = aws_sdk_cloudtrail::config::Builder::from(&self.sdk)
            .region(Region::new(region.to_owned()))
            .retry_config(RetryConfig::disabled());
        if let Some(url) = self.endpoint("cloudtrail") {
            config = config.endpoint_url(url);
        }
        aws_sdk_cloudtrail::Client::from_conf(config.build())
    }

    /// A CloudWatch Logs client for `region`.
    ///
    /// Like [`Clients::cloudtrail`], it retries only through the caller's limiter.
    pub fn logs(&self, region: &str) -> aws_sdk_cloudwatchlogs::Client {
        let mut config = aws_sdk_cloudwatchlogs::config::Builder::from(&self.sdk)
            .region(Region::new(region.to_owned()))
            .retry_config(RetryConfig::disabled());
        if let Some(url) = self.endpoint("logs") {
            config = config.endpoint_url(url);
        }
        aws_sdk_cloudwatchlogs::Client::from_conf(config.build())
    }

    /// A CloudWatch client for `region`.
    pub fn cloudwatch(&self, region: &str) -> aws_sdk_cloudwatch::Client {
        let mut config = aws_sdk_cloudwatch::config::Builder::from(&self.sdk)
            .region(Region::new(region.to_owned()));
        if let Some(url) = self.endpoint("cloudwatch") {
            config = config.endpoint_url(url);
        }
        aws_sdk_cloudwatch::Client::from_conf(config.build())
    }

    /// An SQS client for `region`.
    pub fn sqs(&self, region: &str) -> aws_sdk_sqs::Client {
        let mut config =
            aws_sdk_sqs::config::Builder::from(&self.sdk).region(Region::new(region.to_owned()));
        if let Some(url) = self.endpoint("sqs") {
            config = config.endpoint_url(url);
        }
        aws_sdk_sqs::Client::from_conf(config.build())
    }

    /// An S3 client for `region`; path-style addressing when an endpoint is
    /// overridden, since emulators have no per-bucket host names.
    pub fn s3(&self, region: &str) -> aws_sdk_s3::Client {
        let mut config =
            aws_sdk_s3::config::Builder::from(&self.sdk).region(Region::new(region.to_owned()));
        if let Some(url) = self.endpoint("s3").or(self.sdk.endpoint_url()) {
            config = config.endpoint_url(url).force_path_style(true);
        }
        aws_sdk_s3::Client::from_conf(config.build())
    }

    /// An STS client in the home Region.
    pub fn sts(&self) -> aws_sdk_sts::Client {
        let mut config = aws_sdk_sts::config::Builder::from(&self.sdk);
        if let Some(url) = self.endpoint("sts") {
            config = config.endpoint_url(url);
        }
        aws_sdk_sts::Client::from_conf(config.build())
    }

    /// An EC2 client for `region`.
    pub fn ec2(&self, region: &str) -> aws_sdk_ec2::Client {
        let mut config =
            aws_sdk_ec2::config::Builder::from(&self.sdk).region(Region::new(region.to_owned()));
        if let Some(url) = self.endpoint("ec2") {
            config = config.endpoint_url(url);
        }
        aws_sdk_ec2::Client::from_conf(config.build())
    }

    /// An IAM client (IAM is global; its endpoint is in us-east-1 in the
    /// commercial partition, which the SDK resolves).
    pub fn iam(&self) -> aws_sdk_iam::Client {
        let mut config = aws_sdk_iam::config::Builder::from(&self.sdk);
        if let Some(url) = self.endpoint("iam") {
            config = config.endpoint_url(url);
        }
        aws_sdk_iam::Client::from_conf(config.build())
    }

    /// An SNS client for `region`.
    pub fn sns(&self, region: &str) -> aws_sdk_sns::Client {
        let mut config =
            aws_sdk_sns::config::Builder::from(&self.sdk).region(Region::new(region.to_owned()));
        if let Some(url) = self.endpoint("sns") {
            config = config.endpoint_url(url);
        }
        aws_sdk_sns::Client::from_conf(config.build())
    }

    /// Runs one AWS call: counts it, and on failure describes, classifies
    /// and counts the error by its AWS error code.
    pub async fn call<T, E>(
        &self,
        service: &'static str,
        operation: &'static str,
        call: impl Future<Output = Result<T, SdkError<E, HttpResponse>>>,
    ) -> Result<T, AwsError>
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        self.metrics
            .calls
            .with_label_values(&[service, operation])
            .inc();
        match call.await {
            Ok(out) => Ok(out),
            Err(err) => {
                let err = AwsError::from_sdk(service, operation, &err);
                self.metrics
                    .errors
                    .with_label_values(&[service, operation, &err.code])
                    .inc();
                Err(err)
            }
        }
    }
}
