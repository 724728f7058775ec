//! Checking the SNS topics before the daemon runs (and in `validate
//! --online`): a topic that does not exist, or that these credentials may
//! not use, is a configuration error to fix now, not an outbox that fills
//! silently. A topic that cannot be checked for a passing reason is only a
//! warning: delivery retries until SNS answers.

use super::sinks::sns_api::SnsApi;
use crate::aws::retry::ErrorClass;
use crate::config::SnsSinkConfig;

/// Something wrong with a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicProblem {
    /// Where it is configured, e.g. `alerts.sns[0].topic_arn`.
    pub key: String,
    /// The topic's ARN.
    pub topic: String,
    /// What is wrong and what to do.
    pub message: String,
    /// Whether the daemon must not start this way.
    pub fatal: bool,
}

impl std::fmt::Display for TopicProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} = {:?}: {}", self.key, self.topic, self.message)
    }
}

/// GetTopicAttributes on each topic; the problems found.
pub async fn check<A: SnsApi>(api: &A, topics: &[SnsSinkConfig]) -> Vec<TopicProblem> {
    let mut problems = Vec::new();
    for (i, topic) in topics.iter().enumerate() {
        let arn = &topic.topic_arn;
        let problem = |message: String, fatal: bool| TopicProblem {
            key: format!("alerts.sns[{i}].topic_arn"),
            topic: arn.clone(),
            message,
            fatal,
        };
        match api.topic_attributes(arn).await {
            Ok(attributes) => {
                let confirmed = attributes
                    .get("SubscriptionsConfirmed")
                    .and_then(|n| n.parse::<u64>().ok());
                if confirmed == Some(0) {
                    problems.push(problem(
                        "the topic has no confirmed subscription: alerts published to it reach nobody".to_owned(),
                        false,
                    ));
                }
            }
            Err(err) if err.code == "NotFound" || err.code == "NotFoundException" => {
                problems.push(problem(
                    "the topic does not exist (check alerts.sns.topic_arn, its Region and account)"
                        .to_owned(),
                    true,
                ));
            }
            Err(err)
                if err.code == "AuthorizationError"
                    || err.code == "AccessDenied"
                    || err.code == "AccessDeniedException" =>
            {
                problems.push(problem(
                    format!(
                        "these credentials may not use the topic ({}: {}); allow sns:GetTopicAttributes and sns:Publish on it, and kms:GenerateDataKey and kms:Decrypt on its key if it is encrypted",
                        err.code, err.message
                    ),
                    true,
                ));
            }
            Err(err) if err.class == ErrorClass::Permanent => {
                problems.push(problem(
                    format!("SNS refused to describe the topic: {err}"),
                    true,
                ));
            }
            Err(err) => problems.push(problem(
                format!("cannot check the topic now ({err}); delivery will keep trying"),
                false,
            )),
        }
    }
    problems
}
