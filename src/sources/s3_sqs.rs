//! `s3_sqs`: CloudTrail files in S3, announced on an SQS queue. This is how
//! large accounts and AWS Organizations consume CloudTrail.
//!
//! A message announces one or more objects in any of the shapes AWS sends:
//! an S3 event notification (`Records[].s3`), the same wrapped in an SNS
//! notification, an EventBridge "Object Created" event, or CloudTrail's own
//! file notification (`s3Bucket`, `s3ObjectKey`). `s3:TestEvent` messages
//! and digest files are skipped. Each object is streamed and its records
//! sent one at a time, so memory does not grow with the object's size. The
//! message is deleted only once every record is committed.

use serde_json::Value;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, ReadBuf};
use tokio_util::io::SyncIoBridge;

use super::api::{Message, ObjectApi, ObjectBody, ObjectRequest, QueueApi};
use super::context::SourceContext;
use super::queue::{self, Outcome, QueueSettings};
use crate::aws::retry::Backoff;
use crate::detection::event::{Format, Reason};
use crate::detection::sigma::document::LogSource;
use crate::pipeline::{self, Batch};
use crate::records::{DECOMPRESSED_LIMIT, Flow, Limits, read_records};

/// One object a message announces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRef {
    /// Its Region, when the notification says.
    pub region: Option<String>,
    /// The bucket.
    pub bucket: String,
    /// The key, decoded.
    pub key: String,
}

/// What a message announces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notification {
    /// Objects to read.
    Objects(Vec<ObjectRef>),
    /// S3's test message, sent when notifications are configured.
    Test,
}

/// Reads a message body.
pub fn parse(body: &str) -> Result<Notification, String> {
    let value: Value = serde_json::from_str(body).map_err(|e| format!("not JSON: {e}"))?;
    // An SNS notification carries the S3 (or CloudTrail) message as a string.
    if value.get("Type").and_then(Value::as_str) == Some("Notification") {
        let inner = value
            .get("Message")
            .and_then(Value::as_str)
            .ok_or("SNS notification without a Message")?;
        return parse(inner);
    }
    if value.get("Event").and_then(Value::as_str) == Some("s3:TestEvent") {
        return Ok(Notification::Test);
    }
    if let Some(records) = value.get("Records").and_then(Value::as_array) {
        let mut objects = Vec::new();
        for record in records {
            let s3 = record
                .get("s3")
                .ok_or("an S3 notification record without s3")?;
            let bucket = s3
                .pointer("/bucket/name")
                .and_then(Value::as_str)
                .ok_or("no bucket name")?;
            let key = s3
                .pointer("/object/key")
                .and_then(Value::as_str)
                .ok_or("no object key")?;
            objects.push(ObjectRef {
                region: record
                    .get("awsRegion")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                bucket: bucket.to_owned(),
                key: decode_key(key),
            });
        }
        return Ok(Notification::Objects(objects));
    }
    if value.get("source").and_then(Value::as_str) == Some("aws.s3") {
        let bucket = value
            .pointer("/detail/bucket/name")
            .and_then(Value::as_str)
            .ok_or("no bucket name")?;
        let key = value
            .pointer("/detail/object/key")
            .and_then(Value::as_str)
            .ok_or("no object key")?;
        return Ok(Notification::Objects(vec![ObjectRef {
            region: value
                .get("region")
                .and_then(Value::as_str)
                .map(str::to_owned),
            bucket: bucket.to_owned(),
            key: key.to_owned(),
        }]));
    }
    if let (Some(bucket), Some(keys)) = (
        value.get("s3Bucket").and_then(Value::as_str),
        value.get("s3ObjectKey").and_then(Value::as_array),
    ) {
        return Ok(Notification::Objects(
            keys.iter()
                .filter_map(Value::as_str)
                .map(|key| ObjectRef {
                    region: None,
                    bucket: bucket.to_owned(),
                    key: key.to_owned(),
                })
                .collect(),
        ));
    }
    Err("not an S3, SNS, EventBridge or CloudTrail notification".to_owned())
}

/// S3 event notifications URL-encode keys, with `+` for spaces.
fn decode_key(key: &str) -> String {
    let bytes = key.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Why an object is not read, if it is not a CloudTrail log file.
pub fn skip_reason(key: &str) -> Option<&'static str> {
    if key.contains("/CloudTrail-Digest/") {
        Some("digest")
    } else if !(key.contains("/CloudTrail/") || key.contains("/CloudTrail-Insight/"))
        || !(key.ends_with(".json.gz") || key.ends_with(".json"))
    {
        Some("not_cloudtrail_object")
    } else {
        None
    }
}

/// How an `s3_sqs` source reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The queue.
    pub queue: QueueSettings,
    /// Region of buckets whose notifications do not say.
    pub region: String,
    /// The size limit of one record.
    pub max_record_bytes: usize,
    /// The most bytes an object may hold once decompressed.
    pub max_object_bytes: u64,
    /// Buckets objects may be read from; empty allows any bucket of `bucket_owner`.
    pub buckets: Vec<String>,
    /// The account every bucket read must belong to, sent as
    /// `ExpectedBucketOwner` so S3 refuses a bucket of anyone else; `None`
    /// with no `buckets` means the watched account, asked of STS at start.
    pub bucket_owner: Option<String>,
}

/// Why a bucket named in configuration or a notification is not read from:
/// only plain bucket names are, because S3 also accepts access-point and
/// Object Lambda ARNs and aliases in their place, and reading through those
/// would let whoever controls them (or their Lambda) choose the content.
pub fn bucket_refusal(name: &str) -> Option<String> {
    let refuse = |what: &str| {
        Some(format!(
            "\"{name}\" is {what}, not a bucket name; only buckets are read"
        ))
    };
    if name.starts_with("arn:") {
        return refuse("an ARN");
    }
    if name.ends_with("--ol-s3") {
        return refuse("an Object Lambda access point alias");
    }
    if name.ends_with("-s3alias") {
        return refuse("an access point alias");
    }
    if name.ends_with(".mrap") {
        return refuse("a Multi-Region Access Point alias");
    }
    // Old us-east-1 buckets may have capitals and underscores, and up to 255 characters.
    let plain = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
    if !plain || !(3..=255).contains(&name.len()) {
        return Some(format!("\"{name}\" is not a bucket name"));
    }
    None
}

impl Settings {
    /// Why `bucket` may not be read from, if it may not.
    fn refusal(&self, bucket: &str) -> Option<String> {
        if let Some(why) = bucket_refusal(bucket) {
            return Some(why);
        }
        if !self.buckets.is_empty() && !self.buckets.iter().any(|b| b == bucket) {
            return Some(format!(
                "bucket \"{bucket}\" is not in the source's buckets"
            ));
        }
        None
    }
}

/// Receives until shutdown.
pub async fn run<A: QueueApi + ObjectApi>(ctx: SourceContext, api: Arc<A>, mut settings: Settings) {
    if settings.buckets.is_empty() && settings.bucket_owner.is_none() {
        match watched_account(&ctx, api.as_ref()).await {
            Some(account) => settings.bucket_owner = Some(account),
            None => return,
        }
    }
    let logsource = Arc::new(LogSource::cloudtrail());
    let objects = Arc::clone(&api);
    let shared = Arc::new(settings.clone());
    queue::run(ctx, api, settings.queue, move |ctx, message| {
        let (objects, logsource, settings) = (
            Arc::clone(&objects),
            Arc::clone(&logsource),
            Arc::clone(&shared),
        );
        async move { handle(&ctx, objects.as_ref(), &settings, &message, &logsource).await }
    })
    .await;
}

/// The watched account, asked until STS answers (`None` on shutdown):
/// without it any bucket could be read, so nothing is read before it.
async fn watched_account<A: ObjectApi>(ctx: &SourceContext, api: &A) -> Option<String> {
    let mut backoff = Backoff::new(Duration::from_secs(2), Duration::from_secs(60));
    loop {
        match api.watched_account().await {
            Ok(account) => return Some(account),
            Err(err) => {
                ctx.degraded(format!("cannot tell the watched account: {}", err.short()));
                tracing::warn!(source = %ctx.name, error = %err, "cannot tell which account's buckets to read; retrying");
            }
        }
        tokio::select! {
            () = ctx.stop.cancelled() => return None,
            () = tokio::time::sleep(backoff.next_delay()) => {}
        }
    }
}

async fn handle<A: ObjectApi>(
    ctx: &SourceContext,
    api: &A,
    settings: &Settings,
    message: &Message,
    logsource: &Arc<LogSource>,
) -> Outcome {
    let objects = match parse(&message.body) {
        Ok(Notification::Test) => return Outcome::Skip("test_event"),
        Ok(Notification::Objects(objects)) => objects,
        Err(why) => return Outcome::SetAside(why),
    };
    // A message naming a bucket that may not be read is refused whole,
    // before anything is read, so it is seen and counted where it is kept.
    if let Some(why) = objects.iter().find_map(|o| settings.refusal(&o.bucket)) {
        return Outcome::SetAside(why);
    }
    let (batch, pending) = pipeline::batch();
    let mut read = 0;
    for object in &objects {
        if let Some(reason) = skip_reason(&object.key) {
            ctx.metrics
                .skipped
                .with_label_values(&[&ctx.name, reason])
                .inc();
            continue;
        }
        if let Err(failure) = read_object(ctx, api, settings, object, &batch, logsource).await {
            if let ReadFailure::Permanent(_) | ReadFailure::TooLarge(_) = &failure {
                // The records before the failure are committed before the
                // message can be set aside and deleted, so none is lost.
                drop(batch);
                if !pending.wait().await {
                    return Outcome::Interrupted(
                        "detection did not commit every record".to_owned(),
                    );
                }
            }
            return failure.into();
        }
        read += 1;
    }
    drop(batch);
    if read == 0 {
        return Outcome::Skip("not_cloudtrail_object");
    }
    if pending.wait().await {
        Outcome::Done
    } else {
        Outcome::Interrupted("detection did not commit every record".to_owned())
    }
}

/// Why an object was not read to the end, by what it means for the message.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ReadFailure {
    /// Throttling, 5xx, a timeout, a broken connection: it passes.
    Transient {
        /// Short, for `/readyz`.
        reason: String,
        /// The whole error, for the log.
        detail: String,
    },
    /// This object cannot be read as it is: malformed, denied, missing.
    Permanent(String),
    /// This object is larger than the source reads, and always will be:
    /// set aside now rather than read again up to the limit each attempt.
    TooLarge(String),
    /// Shutdown, or the pipeline stopped.
    Interrupted(String),
}

impl From<ReadFailure> for Outcome {
    fn from(failure: ReadFailure) -> Outcome {
        match failure {
            ReadFailure::Transient { reason, detail } => Outcome::Transient { reason, detail },
            ReadFailure::Permanent(why) => Outcome::Failed(why),
            ReadFailure::TooLarge(why) => Outcome::SetAside(why),
            ReadFailure::Interrupted(why) => Outcome::Interrupted(why),
        }
    }
}

/// An object's body that remembers whether the download itself failed, to
/// tell a broken connection (transient) from a malformed file (permanent).
struct Watched {
    inner: ObjectBody,
    broke: Arc<AtomicBool>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let polled = self.inner.as_mut().poll_read(cx, buf);
        if let Poll::Ready(Err(_)) = &polled {
            self.broke.store(true, Ordering::Relaxed);
        }
        polled
    }
}

/// Streams one object's records into the pipeline.
async fn read_object<A: ObjectApi>(
    ctx: &SourceContext,
    api: &A,
    settings: &Settings,
    object: &ObjectRef,
    batch: &Batch,
    logsource: &Arc<LogSource>,
) -> Result<(), ReadFailure> {
    let region = object
        .region
        .clone()
        .unwrap_or_else(|| settings.region.clone());
    let (body, size) = api
        .get_object(&ObjectRequest {
            region: &region,
            bucket: &object.bucket,
            key: &object.key,
            expected_owner: settings.bucket_owner.as_deref(),
        })
        .await
        .map_err(|e| {
            if e.class.is_retriable() {
                ReadFailure::Transient {
                    reason: e.short(),
                    detail: e.to_string(),
                }
            } else {
                ReadFailure::Permanent(e.to_string())
            }
        })?;
    let url = format!("s3://{}/{}", object.bucket, object.key);
    if let Some(size) = size.and_then(|s| u64::try_from(s).ok()) {
        if size > settings.max_object_bytes {
            return Err(ReadFailure::TooLarge(format!(
                "{url}: {size} bytes, more than max_object_bytes ({})",
                settings.max_object_bytes
            )));
        }
    }
    tracing::debug!(source = %ctx.name, object = %url, size, "reading trail file");
    let broke = Arc::new(AtomicBool::new(false));
    let reader = SyncIoBridge::new(Watched {
        inner: body,
        broke: Arc::clone(&broke),
    });
    let (ctx2, batch, logsource) = (ctx.clone(), batch.clone(), Arc::clone(logsource));
    let limits = Limits {
        record_bytes: settings.max_record_bytes,
        decompressed_bytes: settings.max_object_bytes,
    };
    let result = tokio::task::spawn_blocking(move || {
        let mut failure = None;
        read_records(reader, limits, |record| {
            let origin = format!("{url}#{}", record.position);
            match record.text {
                Ok(text) => {
                    let event = ctx2.event(
                        text.to_owned(),
                        origin,
                        Format::CloudTrail,
                        &logsource,
                        batch.token(),
                    );
                    if ctx2.blocking_send(event).is_err() {
                        failure = Some(ReadFailure::Interrupted(
                            "the pipeline has stopped".to_owned(),
                        ));
                        return Flow::Stop;
                    }
                }
                Err(rejection) if rejection.reason == Reason::Unreadable => {
                    // Records before this one are sent; on a retry they are duplicates.
                    let detail = format!("{origin}: {}", rejection.detail);
                    failure = Some(if broke.load(Ordering::Relaxed) {
                        ReadFailure::Transient {
                            reason: "s3 GetObject failing (the download broke off)".to_owned(),
                            detail,
                        }
                    } else if rejection.detail.contains(DECOMPRESSED_LIMIT) {
                        ReadFailure::TooLarge(detail)
                    } else {
                        ReadFailure::Permanent(detail)
                    });
                    return Flow::Stop;
                }
                Err(rejection) => ctx2.reject(rejection.reason, &origin, &rejection.detail),
            }
            if ctx2.stop.is_cancelled() {
                failure = Some(ReadFailure::Interrupted("stopping".to_owned()));
                return Flow::Stop;
            }
            Flow::Continue
        });
        failure
    })
    .await
    .map_err(|e| ReadFailure::Permanent(format!("reading the object failed: {e}")))?;
    match result {
        Some(failure) => Err(failure),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_notification_shape() {
        let direct = r#"{"Records":[{"eventSource":"aws:s3","awsRegion":"eu-west-1","eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"trail"},"object":{"key":"AWSLogs/o-abc123/111122223333/CloudTrail/eu-west-1/2026/11/01/f+one%3A.json.gz","size":10}}}]}"#;
        let Notification::Objects(objects) = parse(direct).unwrap() else {
            panic!()
        };
        assert_eq!(
            objects[0].key,
            "AWSLogs/o-abc123/111122223333/CloudTrail/eu-west-1/2026/11/01/f one:.json.gz"
        );
        assert_eq!(objects[0].region.as_deref(), Some("eu-west-1"));
        let sns = serde_json::json!({"Type": "Notification", "Message": direct}).to_string();
        assert_eq!(parse(&sns).unwrap(), parse(direct).unwrap());
        assert_eq!(
            parse(r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Bucket":"trail"}"#).unwrap(),
            Notification::Test
        );
        let eventbridge = r#"{"source":"aws.s3","detail-type":"Object Created","region":"us-east-1","detail":{"bucket":{"name":"b"},"object":{"key":"k"}}}"#;
        assert_eq!(
            parse(eventbridge).unwrap(),
            Notification::Objects(vec![ObjectRef {
                region: Some("us-east-1".into()),
                bucket: "b".into(),
                key: "k".into()
            }])
        );
        let cloudtrail = r#"{"s3Bucket":"b","s3ObjectKey":["AWSLogs/1/CloudTrail/x.json.gz","AWSLogs/1/CloudTrail/y.json.gz"]}"#;
        let Notification::Objects(objects) = parse(cloudtrail).unwrap() else {
            panic!()
        };
        assert_eq!(objects.len(), 2);
        assert!(parse("{}").is_err() && parse("nope").is_err());
    }

    #[test]
    fn digests_and_other_objects_are_skipped() {
        assert_eq!(
            skip_reason("AWSLogs/1/CloudTrail-Digest/us-east-1/2026/11/01/d.json.gz"),
            Some("digest")
        );
        assert_eq!(
            skip_reason("AWSLogs/1/Config/us-east-1/x.json.gz"),
            Some("not_cloudtrail_object")
        );
        assert_eq!(
            skip_reason("AWSLogs/1/CloudTrail/us-east-1/2026/11/01/f.json.gz"),
            None
        );
        assert_eq!(
            skip_reason("AWSLogs/o-1/2/CloudTrail/us-east-1/2026/11/01/f.json"),
            None
        );
        assert_eq!(decode_key("a%2Fb%zz%"), "a/b%zz%");
    }
}
