//! `eventbridge_sqs`: CloudTrail events in near real time, from EventBridge
//! rules that target an SQS queue. Each message is an EventBridge envelope
//! whose `detail` is the CloudTrail record; the same event read by another
//! CloudTrail source is dropped by eventID in detection.

use std::sync::Arc;

use sonic_rs::JsonValueTrait;

use super::api::{Message, QueueApi};
use super::context::SourceContext;
use super::queue::{self, Outcome, QueueSettings};
use crate::detection::event::Format;
use crate::detection::sigma::document::LogSource;
use crate::pipeline;

/// Receives until shutdown.
pub async fn run<Q: QueueApi>(ctx: SourceContext, api: Arc<Q>, settings: QueueSettings) {
    let logsource = Arc::new(LogSource::cloudtrail());
    queue::run(ctx, api, settings, move |ctx, message| {
        let logsource = Arc::clone(&logsource);
        async move { handle(&ctx, &message, &logsource).await }
    })
    .await;
}

/// The CloudTrail record inside an EventBridge envelope.
pub fn unwrap(body: &str) -> Result<String, String> {
    let detail = sonic_rs::get(body, ["detail"])
        .map_err(|_| "not an EventBridge event: no detail".to_owned())?;
    if !detail.is_object() {
        return Err("not an EventBridge event: detail is not an object".to_owned());
    }
    Ok(detail.as_raw_str().to_owned())
}

async fn handle(ctx: &SourceContext, message: &Message, logsource: &Arc<LogSource>) -> Outcome {
    let record = match unwrap(&message.body) {
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
        return Outcome::Retry("the pipeline has stopped".to_owned());
    }
    drop(batch);
    if pending.wait().await {
        Outcome::Done
    } else {
        Outcome::Retry("detection did not commit the event".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unwraps_detail_and_refuses_other_bodies() {
        let body = r#"{"version":"0","id":"1","detail-type":"AWS API Call via CloudTrail","source":"aws.iam","detail":{"eventName":"CreateUser","eventID":"e"}}"#;
        assert_eq!(
            unwrap(body).unwrap(),
            r#"{"eventName":"CreateUser","eventID":"e"}"#
        );
        assert!(unwrap("not json").is_err());
        assert!(unwrap(r#"{"detail":"x"}"#).is_err());
    }
}
