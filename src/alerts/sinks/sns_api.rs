//! The SNS calls alert delivery makes, behind a narrow interface: the
//! daemon uses [`SnsClient`], the SDK; tests substitute their own.

use std::collections::BTreeMap;
use std::future::Future;

use aws_sdk_sns::types::{MessageAttributeValue, PublishBatchRequestEntry};

use crate::alerts::render::SnsMessage;
use crate::aws::retry::{ErrorClass, classify_response};
use crate::aws::{AwsError, Clients};

/// SNS.
pub trait SnsApi: Send + Sync + 'static {
    /// Publishes `messages` to `topic_arn` (one Publish, or one PublishBatch
    /// of up to 10), answering for each message in order.
    fn publish(
        &self,
        topic_arn: &str,
        messages: &[SnsMessage],
    ) -> impl Future<Output = Vec<Result<(), AwsError>>> + Send;

    /// The topic's attributes (GetTopicAttributes).
    fn topic_attributes(
        &self,
        topic_arn: &str,
    ) -> impl Future<Output = Result<BTreeMap<String, String>, AwsError>> + Send;
}

/// The Region of a topic, from its ARN.
pub fn topic_region(topic_arn: &str) -> Option<&str> {
    topic_arn.split(':').nth(3).filter(|r| !r.is_empty())
}

/// SNS through the SDK clients.
#[derive(Clone, Debug)]
pub struct SnsClient {
    clients: Clients,
}

impl SnsClient {
    /// SNS through `clients`.
    pub fn new(clients: Clients) -> SnsClient {
        SnsClient { clients }
    }

    fn client(&self, topic_arn: &str) -> aws_sdk_sns::Client {
        let home = self.clients.home_region();
        self.clients.sns(topic_region(topic_arn).unwrap_or(&home))
    }
}

fn attributes(message: &SnsMessage) -> Result<BTreeMap<String, MessageAttributeValue>, AwsError> {
    message
        .attributes
        .iter()
        .map(|(name, value)| {
            MessageAttributeValue::builder()
                .data_type("String")
                .string_value(value)
                .build()
                .map(|v| ((*name).to_owned(), v))
                .map_err(|e| construction("Publish", &e.to_string()))
        })
        .collect()
}

fn construction(operation: &'static str, message: &str) -> AwsError {
    AwsError {
        service: "sns",
        operation,
        code: "construction".to_owned(),
        message: message.to_owned(),
        class: ErrorClass::Permanent,
    }
}

impl SnsClient {
    async fn publish_one(&self, topic_arn: &str, message: &SnsMessage) -> Result<(), AwsError> {
        let request = self
            .client(topic_arn)
            .publish()
            .topic_arn(topic_arn)
            .message(&message.body)
            .set_subject(message.subject.clone())
            .set_message_structure(message.structured.then(|| "json".to_owned()))
            .set_message_attributes(Some(attributes(message)?.into_iter().collect()))
            .set_message_group_id(message.fifo.as_ref().map(|f| f.group_id.clone()))
            .set_message_deduplication_id(message.fifo.as_ref().map(|f| f.dedup_id.clone()))
            .send();
        self.clients
            .call("sns", "Publish", request)
            .await
            .map(|_| ())
    }

    async fn publish_batch(
        &self,
        topic_arn: &str,
        messages: &[SnsMessage],
    ) -> Vec<Result<(), AwsError>> {
        let mut entries = Vec::with_capacity(messages.len());
        for (i, message) in messages.iter().enumerate() {
            let entry = attributes(message).and_then(|attrs| {
                PublishBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message(&message.body)
                    .set_subject(message.subject.clone())
                    .set_message_structure(message.structured.then(|| "json".to_owned()))
                    .set_message_attributes(Some(attrs.into_iter().collect()))
                    .set_message_group_id(message.fifo.as_ref().map(|f| f.group_id.clone()))
                    .set_message_deduplication_id(message.fifo.as_ref().map(|f| f.dedup_id.clone()))
                    .build()
                    .map_err(|e| construction("PublishBatch", &e.to_string()))
            });
            match entry {
                Ok(entry) => entries.push(entry),
                Err(err) => return vec![Err(err); messages.len()],
            }
        }
        let request = self
            .client(topic_arn)
            .publish_batch()
            .topic_arn(topic_arn)
            .set_publish_batch_request_entries(Some(entries))
            .send();
        let out = match self.clients.call("sns", "PublishBatch", request).await {
            Ok(out) => out,
            Err(err) => return vec![Err(err); messages.len()],
        };
        let mut results: Vec<Result<(), AwsError>> = vec![
            Err(AwsError {
                service: "sns",
                operation: "PublishBatch",
                code: "missing".to_owned(),
                message: "SNS answered neither success nor failure for this entry".to_owned(),
                class: ErrorClass::Transient,
            });
            messages.len()
        ];
        for ok in out.successful() {
            if let Some(slot) = ok
                .id()
                .and_then(|id| id.parse::<usize>().ok())
                .and_then(|i| results.get_mut(i))
            {
                *slot = Ok(());
            }
        }
        for failed in out.failed() {
            let Some(slot) = failed
                .id()
                .parse::<usize>()
                .ok()
                .and_then(|i| results.get_mut(i))
            else {
                continue;
            };
            let class = if failed.sender_fault() {
                classify_response(Some(failed.code()), 400)
            } else {
                classify_response(Some(failed.code()), 500)
            };
            *slot = Err(AwsError {
                service: "sns",
                operation: "PublishBatch",
                code: failed.code().to_owned(),
                message: failed.message().unwrap_or("no message").to_owned(),
                class,
            });
        }
        results
    }
}

impl SnsApi for SnsClient {
    async fn publish(&self, topic_arn: &str, messages: &[SnsMessage]) -> Vec<Result<(), AwsError>> {
        match messages {
            [] => Vec::new(),
            [one] => vec![self.publish_one(topic_arn, one).await],
            many => self.publish_batch(topic_arn, many).await,
        }
    }

    async fn topic_attributes(
        &self,
        topic_arn: &str,
    ) -> Result<BTreeMap<String, String>, AwsError> {
        let request = self
            .client(topic_arn)
            .get_topic_attributes()
            .topic_arn(topic_arn)
            .send();
        let out = self
            .clients
            .call("sns", "GetTopicAttributes", request)
            .await?;
        Ok(out
            .attributes()
            .map(|a| a.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default())
    }
}
