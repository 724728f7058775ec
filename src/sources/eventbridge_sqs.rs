//! `eventbridge_sqs`: CloudTrail events in near real time, from EventBridge
//! rules that target an SQS queue. Each message is an EventBridge envelope
//! whose `detail` is the CloudTrail record; the same event read by another
//! CloudTrail source is dropped by eventID in detection.
//!
//! Anyone allowed to send to the queue, or to put events on the bus, could
//! otherwise feed detection made-up "CloudTrail" records, or drown it. So
//! the envelope is checked first: its `detail-type` must be one CloudTrail
//! gives (`... via CloudTrail`), its `source` must start with `aws.` (which
//! EventBridge refuses in custom events), and its `account` must be one of
//! `accounts` when that is set. Anything else is set aside with why.

use std::sync::Arc;

use sonic_rs::JsonValueTrait;

use super::api::{Message, QueueApi};
use super::context::SourceContext;
use super::queue::{self, Outcome, QueueSettings};
use crate::detection::event::Format;
use crate::detection::sigma::document::LogSource;
use crate::pipeline;

/// The `detail-type`s EventBridge gives CloudTrail events.
const CLOUDTRAIL_DETAIL_TYPES: [&str; 5] = [
    "AWS API Call via CloudTrail",
    "AWS Console Sign In via CloudTrail",
    "AWS Console Action via CloudTrail",
    "AWS Service Event via CloudTrail",
    "AWS Insight via CloudTrail",
];

/// Receives until shutdown; `accounts` (if any) are the envelope accounts accepted.
pub async fn run<Q: QueueApi>(
    ctx: SourceContext,
    api: Arc<Q>,
    settings: QueueSettings,
    accounts: Vec<String>,
) {
    let logsource = Arc::new(LogSource::cloudtrail());
    let accounts: Arc<[String]> = accounts.into();
    queue::run(ctx, api, settings, move |ctx, message| {
        let logsource = Arc::clone(&logsource);
        let accounts = Arc::clone(&accounts);
        async move { handle(&ctx, &message, &logsource, &accounts).await }
    })
    .await;
}

/// The CloudTrail record inside an EventBridge envelope, once the envelope
/// says it is one (see the module docs); `accounts` empty accepts any.
pub fn unwrap(body: &str, accounts: &[String]) -> Result<String, String> {
    let text = |key: &str| {
        sonic_rs::get(body, [key])
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
    };
    let detail_type = text("detail-type").unwrap_or_default();
    if !CLOUDTRAIL_DETAIL_TYPES.contains(&detail_type.as_str()) {
        return Err(format!(
            "not a CloudTrail event: detail-type {detail_type:?}"
        ));
    }
    let source = text("source").unwrap_or_default();
    if !source.starts_with("aws.") {
        return Err(format!(
            "not from AWS: source {source:?} (custom events cannot use aws.*)"
        ));
    }
    if !accounts.is_empty() {
        let account = text("account").unwrap_or_default();
        if !accounts.contains(&account) {
            return Err(format!("from account {account:?}, not one of accounts"));
        }
    }
    let detail = sonic_rs::get(body, ["detail"])
        .map_err(|_| "not an EventBridge event: no detail".to_owned())?;
    if !detail.is_object() {
        return Err("not an EventBridge event: detail is not an object".to_owned());
    }
    Ok(detail.as_raw_str().to_owned())
}

async fn handle(
    ctx: &SourceContext,
    message: &Message,
    logsource: &Arc<LogSource>,
    accounts: &[String],
) -> Outcome {
    let record = match unwrap(&message.body, accounts) {
        Ok(record) => record,
        Err(why) => return Outcome::SetAside(why),
    };
    let (batch, pending) = pipeline::batch();
    let origin = format!("sqs message {}", message.id);
    if ctx
        .send(ctx.event(record, origin, Format::CloudTrail, logsource, batch.token()))
        .await
        .is_err()
    {
        return Outcome::Interrupted("the pipeline has stopped".to_owned());
    }
    drop(batch);
    if pending.wait().await {
        Outcome::Done
    } else {
        Outcome::Interrupted("detection did not commit the event".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unwraps_detail_and_refuses_other_bodies() {
        let body = r#"{"version":"0","id":"1","detail-type":"AWS API Call via CloudTrail","source":"aws.iam","account":"111122223333","detail":{"eventName":"CreateUser","eventID":"e"}}"#;
        assert_eq!(
            unwrap(body, &[]).unwrap(),
            r#"{"eventName":"CreateUser","eventID":"e"}"#
        );
        assert!(unwrap("not json", &[]).is_err());
        assert!(
            unwrap(
                r#"{"detail-type":"AWS API Call via CloudTrail","source":"aws.iam","detail":"x"}"#,
                &[]
            )
            .is_err()
        );
    }

    #[test]
    fn the_envelope_must_be_cloudtrails_from_aws_and_an_allowed_account() {
        let envelope = |detail_type: &str, source: &str, account: &str| {
            format!(
                r#"{{"detail-type":"{detail_type}","source":"{source}","account":"{account}","detail":{{"eventID":"e"}}}}"#
            )
        };
        let ok = envelope("AWS API Call via CloudTrail", "aws.s3", "111122223333");
        let mine = ["111122223333".to_owned()];
        assert!(unwrap(&ok, &mine).is_ok());
        // A custom event made to look like CloudTrail's.
        let spoofed = envelope("AWS API Call via CloudTrail", "my.app", "111122223333");
        assert!(
            unwrap(&spoofed, &mine)
                .unwrap_err()
                .contains("not from AWS")
        );
        let other_type = envelope(
            "EC2 Instance State-change Notification",
            "aws.ec2",
            "111122223333",
        );
        assert!(
            unwrap(&other_type, &mine)
                .unwrap_err()
                .contains("detail-type")
        );
        let foreign = envelope("AWS API Call via CloudTrail", "aws.s3", "999999999999");
        assert!(
            unwrap(&foreign, &mine)
                .unwrap_err()
                .contains("999999999999")
        );
        assert!(unwrap(&foreign, &[]).is_ok());
    }
}
