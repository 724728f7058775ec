//! The AWS calls sources make, behind narrow interfaces.
//!
//! Sources are generic over these traits: the daemon uses [`Aws`], the real
//! SDK clients; tests wrap them in [`super::faults::Faulty`] to inject
//! throttling and outages. Each call is rate-limited where AWS limits it,
//! counted, and its failure classified (see `crate::aws::retry`).

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use aws_sdk_cloudtrail::primitives::DateTime;
use tokio::io::AsyncRead;

use crate::aws::rate::RateLimits;
use crate::aws::retry::Backoff;
use crate::aws::{AwsError, Clients};

/// LookupEvents: 2 requests per second per account and Region.
pub const LOOKUP_EVENTS_PER_SECOND: u32 = 2;
/// FilterLogEvents: 5 requests per second per account and Region.
pub const FILTER_LOG_EVENTS_PER_SECOND: u32 = 5;

/// One page of LookupEvents.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LookupPage {
    /// Each event's `CloudTrailEvent`: the record as JSON text.
    pub records: Vec<String>,
    /// More pages follow.
    pub next_token: Option<String>,
    /// The newest event time on the page, ms since the epoch.
    pub newest_ms: Option<i64>,
}

/// What a LookupEvents call asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LookupQuery {
    /// Events at or after this time, Unix seconds.
    pub start: i64,
    /// Events at or before this time, Unix seconds.
    pub end: i64,
    /// Only events of this source (`iam.amazonaws.com`), the one lookup attribute.
    pub event_source: Option<String>,
    /// The page to read.
    pub next_token: Option<String>,
}

/// CloudTrail's LookupEvents.
pub trait CloudTrailApi: Send + Sync + 'static {
    /// One page (up to 50) of management events in `region`, newest first.
    fn lookup_events(
        &self,
        region: &str,
        query: &LookupQuery,
    ) -> impl Future<Output = Result<LookupPage, AwsError>> + Send;
}

/// One log event from FilterLogEvents.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogEvent {
    /// The event's id, unique within the log group.
    pub event_id: String,
    /// The stream it belongs to.
    pub stream: String,
    /// Its timestamp, ms since the epoch.
    pub timestamp: i64,
    /// When CloudWatch Logs ingested it, ms since the epoch.
    pub ingestion_time: Option<i64>,
    /// The message.
    pub message: String,
}

/// One page of FilterLogEvents; it may be empty and still have a next token.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogPage {
    /// The events.
    pub events: Vec<LogEvent>,
    /// More pages follow.
    pub next_token: Option<String>,
}

/// What a FilterLogEvents call asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogQuery {
    /// The log group.
    pub group: String,
    /// Events at or after this time, ms.
    pub start: i64,
    /// Events before this time, ms.
    pub end: i64,
    /// A CloudWatch Logs filter pattern.
    pub filter_pattern: Option<String>,
    /// Only streams whose names start with this.
    pub stream_prefix: Option<String>,
    /// The page to read.
    pub next_token: Option<String>,
}

/// CloudWatch Logs.
pub trait LogsApi: Send + Sync + 'static {
    /// Log group names starting with `prefix`, one page.
    fn log_groups(
        &self,
        region: &str,
        prefix: &str,
        next_token: Option<String>,
    ) -> impl Future<Output = Result<(Vec<String>, Option<String>), AwsError>> + Send;

    /// One page of FilterLogEvents.
    fn filter_log_events(
        &self,
        region: &str,
        query: &LogQuery,
    ) -> impl Future<Output = Result<LogPage, AwsError>> + Send;
}

/// One SQS message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Message {
    /// The message id.
    pub id: String,
    /// The handle to delete it or change its visibility.
    pub receipt: String,
    /// The body.
    pub body: String,
    /// How many times it has been received (ApproximateReceiveCount).
    pub receive_count: u32,
}

/// SQS.
pub trait QueueApi: Send + Sync + 'static {
    /// Up to `max` messages, waiting up to `wait_seconds` for one, hidden from
    /// other receivers for `visibility_seconds`.
    fn receive(
        &self,
        queue_url: &str,
        max: i32,
        wait_seconds: i32,
        visibility_seconds: i32,
    ) -> impl Future<Output = Result<Vec<Message>, AwsError>> + Send;

    /// Deletes a processed message.
    fn delete(
        &self,
        queue_url: &str,
        receipt: &str,
    ) -> impl Future<Output = Result<(), AwsError>> + Send;

    /// Keeps a message hidden for `seconds` more.
    fn extend_visibility(
        &self,
        queue_url: &str,
        receipt: &str,
        seconds: i32,
    ) -> impl Future<Output = Result<(), AwsError>> + Send;
}

/// An object's bytes as they arrive.
pub type ObjectBody = Pin<Box<dyn AsyncRead + Send>>;

/// S3.
pub trait ObjectApi: Send + Sync + 'static {
    /// Streams an object; its size when S3 says.
    fn get_object(
        &self,
        request: &ObjectRequest<'_>,
    ) -> impl Future<Output = Result<(ObjectBody, Option<i64>), AwsError>> + Send;

    /// The account the credentials belong to (STS `GetCallerIdentity`,
    /// which needs no permission): whose buckets are read by default.
    fn watched_account(&self) -> impl Future<Output = Result<String, AwsError>> + Send;
}

/// One object to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectRequest<'a> {
    /// The bucket's Region.
    pub region: &'a str,
    /// The bucket.
    pub bucket: &'a str,
    /// The key.
    pub key: &'a str,
    /// The account that must own the bucket (`ExpectedBucketOwner`): S3
    /// answers 403 for a bucket of any other account.
    pub expected_owner: Option<&'a str>,
}

/// The real AWS, through the SDK clients.
#[derive(Clone)]
pub struct Aws {
    clients: Clients,
    limits: RateLimits,
}

impl Aws {
    /// Real AWS access through `clients`, limited by `limits`.
    pub fn new(clients: Clients, limits: RateLimits) -> Aws {
        Aws { clients, limits }
    }
}

/// Attempts of a rate-limited call before its error reaches the source.
const LIMITED_ATTEMPTS: u32 = 4;

impl Aws {
    /// Runs a rate-limited call, retrying throttling and passing faults with
    /// backoff. The SDK clients of these calls do not retry on their own:
    /// every attempt here waits for its turn at the limiter, so retries
    /// count against the limit too.
    async fn limited<T, F, Fut>(
        &self,
        operation: &'static str,
        region: &str,
        per_second: u32,
        mut call: F,
    ) -> Result<T, AwsError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, AwsError>>,
    {
        let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(10));
        let mut attempt = 1;
        loop {
            self.limits.acquire(operation, region, per_second).await;
            match call().await {
                Err(err) if err.class.is_retriable() && attempt < LIMITED_ATTEMPTS => {
                    attempt += 1;
                    tokio::time::sleep(backoff.next_delay()).await;
                }
                result => return result,
            }
        }
    }

    async fn lookup_once(&self, region: &str, query: &LookupQuery) -> Result<LookupPage, AwsError> {
        let client = self.clients.cloudtrail(region);
        let attribute = query
            .event_source
            .as_ref()
            .map(|source| {
                aws_sdk_cloudtrail::types::LookupAttribute::builder()
                    .attribute_key(aws_sdk_cloudtrail::types::LookupAttributeKey::EventSource)
                    .attribute_value(source)
                    .build()
            })
            .transpose()
            .map_err(|e| AwsError {
                service: "cloudtrail",
                operation: "LookupEvents",
                code: "construction".to_owned(),
                message: e.to_string(),
                class: crate::aws::retry::ErrorClass::Permanent,
            })?;
        let request = client
            .lookup_events()
            .start_time(DateTime::from_secs(query.start))
            .end_time(DateTime::from_secs(query.end))
            .max_results(50)
            .set_lookup_attributes(attribute.map(|a| vec![a]))
            .set_next_token(query.next_token.clone())
            .send();
        let out = self
            .clients
            .call("cloudtrail", "LookupEvents", request)
            .await?;
        Ok(LookupPage {
            records: out
                .events()
                .iter()
                .filter_map(|e| e.cloud_trail_event().map(str::to_owned))
                .collect(),
            next_token: out.next_token().map(str::to_owned),
            newest_ms: out
                .events()
                .iter()
                .filter_map(|e| e.event_time())
                .map(|t| t.to_millis().unwrap_or(0))
                .max(),
        })
    }

    async fn groups_once(
        &self,
        region: &str,
        prefix: &str,
        next_token: Option<String>,
    ) -> Result<(Vec<String>, Option<String>), AwsError> {
        let client = self.clients.logs(region);
        let request = client
            .describe_log_groups()
            .log_group_name_prefix(prefix)
            .set_next_token(next_token)
            .send();
        let out = self
            .clients
            .call("logs", "DescribeLogGroups", request)
            .await?;
        let names = out
            .log_groups()
            .iter()
            .filter_map(|g| g.log_group_name().map(str::to_owned))
            .collect();
        Ok((names, out.next_token().map(str::to_owned)))
    }

    async fn filter_once(&self, region: &str, query: &LogQuery) -> Result<LogPage, AwsError> {
        let client = self.clients.logs(region);
        let request = client
            .filter_log_events()
            .log_group_name(&query.group)
            .start_time(query.start)
            .end_time(query.end)
            .set_filter_pattern(query.filter_pattern.clone())
            .set_log_stream_name_prefix(query.stream_prefix.clone())
            .set_next_token(query.next_token.clone())
            .send();
        let out = self
            .clients
            .call("logs", "FilterLogEvents", request)
            .await?;
        Ok(LogPage {
            events: out
                .events()
                .iter()
                .map(|e| LogEvent {
                    event_id: e.event_id().unwrap_or_default().to_owned(),
                    stream: e.log_stream_name().unwrap_or_default().to_owned(),
                    timestamp: e.timestamp().unwrap_or_default(),
                    ingestion_time: e.ingestion_time(),
                    message: e.message().unwrap_or_default().to_owned(),
                })
                .collect(),
            next_token: out.next_token().map(str::to_owned),
        })
    }
}

impl CloudTrailApi for Aws {
    async fn lookup_events(
        &self,
        region: &str,
        query: &LookupQuery,
    ) -> Result<LookupPage, AwsError> {
        self.limited("LookupEvents", region, LOOKUP_EVENTS_PER_SECOND, || {
            self.lookup_once(region, query)
        })
        .await
    }
}

impl LogsApi for Aws {
    async fn log_groups(
        &self,
        region: &str,
        prefix: &str,
        next_token: Option<String>,
    ) -> Result<(Vec<String>, Option<String>), AwsError> {
        self.limited("DescribeLogGroups", region, 5, || {
            self.groups_once(region, prefix, next_token.clone())
        })
        .await
    }

    async fn filter_log_events(&self, region: &str, query: &LogQuery) -> Result<LogPage, AwsError> {
        self.limited(
            "FilterLogEvents",
            region,
            FILTER_LOG_EVENTS_PER_SECOND,
            || self.filter_once(region, query),
        )
        .await
    }
}

/// The Region of a queue, from its URL (`https://sqs.<region>.amazonaws.com/...`);
/// the home Region for other URLs (emulators).
pub fn queue_region(queue_url: &str, home: &str) -> String {
    queue_url
        .split('/')
        .nth(2)
        .and_then(|host| host.strip_prefix("sqs."))
        .and_then(|rest| rest.split('.').next())
        .filter(|r| r.contains('-'))
        .map_or_else(|| home.to_owned(), str::to_owned)
}

impl QueueApi for Aws {
    async fn receive(
        &self,
        queue_url: &str,
        max: i32,
        wait_seconds: i32,
        visibility_seconds: i32,
    ) -> Result<Vec<Message>, AwsError> {
        let client = self
            .clients
            .sqs(&queue_region(queue_url, &self.clients.home_region()));
        let request = client
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(max)
            .wait_time_seconds(wait_seconds)
            .visibility_timeout(visibility_seconds)
            .message_system_attribute_names(
                aws_sdk_sqs::types::MessageSystemAttributeName::ApproximateReceiveCount,
            )
            .send();
        let out = self.clients.call("sqs", "ReceiveMessage", request).await?;
        Ok(out
            .messages()
            .iter()
            .map(|m| Message {
                id: m.message_id().unwrap_or_default().to_owned(),
                receipt: m.receipt_handle().unwrap_or_default().to_owned(),
                body: m.body().unwrap_or_default().to_owned(),
                receive_count: m
                    .attributes()
                    .and_then(|a| a.get(&aws_sdk_sqs::types::MessageSystemAttributeName::ApproximateReceiveCount))
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(1),
            })
            .collect())
    }

    async fn delete(&self, queue_url: &str, receipt: &str) -> Result<(), AwsError> {
        let client = self
            .clients
            .sqs(&queue_region(queue_url, &self.clients.home_region()));
        let request = client
            .delete_message()
            .queue_url(queue_url)
            .receipt_handle(receipt)
            .send();
        self.clients
            .call("sqs", "DeleteMessage", request)
            .await
            .map(|_| ())
    }

    async fn extend_visibility(
        &self,
        queue_url: &str,
        receipt: &str,
        seconds: i32,
    ) -> Result<(), AwsError> {
        let client = self
            .clients
            .sqs(&queue_region(queue_url, &self.clients.home_region()));
        let request = client
            .change_message_visibility()
            .queue_url(queue_url)
            .receipt_handle(receipt)
            .visibility_timeout(seconds)
            .send();
        self.clients
            .call("sqs", "ChangeMessageVisibility", request)
            .await
            .map(|_| ())
    }
}

impl ObjectApi for Aws {
    async fn get_object(
        &self,
        request: &ObjectRequest<'_>,
    ) -> Result<(ObjectBody, Option<i64>), AwsError> {
        let client = self.clients.s3(request.region);
        let call = client
            .get_object()
            .bucket(request.bucket)
            .key(request.key)
            .set_expected_bucket_owner(request.expected_owner.map(str::to_owned))
            .send();
        let out = self.clients.call("s3", "GetObject", call).await?;
        let size = out.content_length();
        Ok((Box::pin(out.body.into_async_read()), size))
    }

    async fn watched_account(&self) -> Result<String, AwsError> {
        Ok(crate::aws::caller_identity(&self.clients).await?.account)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_regions_come_from_their_urls() {
        assert_eq!(
            queue_region("https://sqs.eu-west-1.amazonaws.com/1/q", "us-east-1"),
            "eu-west-1"
        );
        assert_eq!(
            queue_region("http://127.0.0.1:5000/123456789012/q", "us-east-1"),
            "us-east-1"
        );
        assert_eq!(
            queue_region("https://sqs.us-gov-west-1.amazonaws.com/1/q", "x"),
            "us-gov-west-1"
        );
    }
}
