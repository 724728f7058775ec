//! The AWS calls alarm management makes, behind a narrow interface: the
//! daemon and the CLI use [`AwsAlarms`], the SDK.

use std::collections::BTreeMap;
use std::future::Future;

use aws_sdk_cloudwatch::types::{ComparisonOperator, Dimension, Statistic};
use aws_sdk_cloudwatchlogs::types::MetricTransformation;

use super::desired::{Alarm, Filter};
use crate::aws::rate::RateLimiter;
use crate::aws::retry::ErrorClass;
use crate::aws::{AwsError, Clients};

/// A metric filter as CloudWatch Logs has it.
#[derive(Debug, Clone, PartialEq)]
pub struct ExistingFilter {
    /// Its name.
    pub name: String,
    /// Its pattern.
    pub pattern: String,
    /// The first metric transformation's namespace, name and value.
    pub metric: Option<(String, String, String)>,
}

/// An alarm as CloudWatch has it.
#[derive(Debug, Clone, PartialEq)]
pub struct ExistingAlarm {
    /// The alarm, in the shape of a declared one.
    pub alarm: Alarm,
    /// Whether its actions are enabled.
    pub actions_enabled: bool,
}

/// CloudWatch, CloudWatch Logs, SNS and CloudTrail, as alarm management needs them.
pub trait AlarmsApi: Send + Sync {
    /// Every metric filter on `log_group`.
    fn filters(
        &self,
        log_group: &str,
    ) -> impl Future<Output = Result<Vec<ExistingFilter>, AwsError>> + Send;
    /// Creates or replaces `filter`.
    fn put_filter(&self, filter: &Filter) -> impl Future<Output = Result<(), AwsError>> + Send;
    /// The alarms of these names that exist.
    fn alarms(
        &self,
        names: &[String],
    ) -> impl Future<Output = Result<Vec<ExistingAlarm>, AwsError>> + Send;
    /// Creates or replaces `alarm`, with its actions enabled.
    fn put_alarm(&self, alarm: &Alarm) -> impl Future<Output = Result<(), AwsError>> + Send;
    /// A topic's attributes (GetTopicAttributes).
    fn topic_attributes(
        &self,
        topic_arn: &str,
    ) -> impl Future<Output = Result<BTreeMap<String, String>, AwsError>> + Send;
    /// How many of the topic's subscriptions are confirmed.
    fn confirmed_subscriptions(
        &self,
        topic_arn: &str,
    ) -> impl Future<Output = Result<usize, AwsError>> + Send;
    /// The trails that deliver to CloudWatch Logs: (trail ARN, log group ARN).
    fn trail_log_groups(
        &self,
    ) -> impl Future<Output = Result<Vec<(String, String)>, AwsError>> + Send;
    /// Whether the trail is logging now (`GetTrailStatus`).
    fn trail_logging(&self, trail_arn: &str)
    -> impl Future<Output = Result<bool, AwsError>> + Send;
}

/// The SDK, in the home Region, within PutMetricAlarm's 3 requests a second.
pub struct AwsAlarms {
    clients: Clients,
    region: String,
    puts: RateLimiter,
}

impl AwsAlarms {
    /// Alarm management through `clients`.
    pub fn new(clients: Clients) -> AwsAlarms {
        AwsAlarms {
            region: clients.home_region(),
            clients,
            puts: RateLimiter::per_second(3),
        }
    }
}

fn construction(operation: &'static str, message: String) -> AwsError {
    AwsError {
        service: "cloudwatch",
        operation,
        code: "construction".to_owned(),
        message,
        class: ErrorClass::Permanent,
    }
}

impl AlarmsApi for AwsAlarms {
    async fn filters(&self, log_group: &str) -> Result<Vec<ExistingFilter>, AwsError> {
        let client = self.clients.logs(&self.region);
        let mut out = Vec::new();
        let mut token = None;
        // Bounded: a log group has at most a few hundred filters.
        for _ in 0..100 {
            let request = client
                .describe_metric_filters()
                .log_group_name(log_group)
                .set_next_token(token)
                .send();
            let page = self
                .clients
                .call("logs", "DescribeMetricFilters", request)
                .await?;
            for f in page.metric_filters() {
                let metric = f.metric_transformations().first().map(|m| {
                    (
                        m.metric_namespace().to_owned(),
                        m.metric_name().to_owned(),
                        m.metric_value().to_owned(),
                    )
                });
                out.push(ExistingFilter {
                    name: f.filter_name().unwrap_or_default().to_owned(),
                    pattern: f.filter_pattern().unwrap_or_default().to_owned(),
                    metric,
                });
            }
            token = page.next_token().map(str::to_owned);
            if token.is_none() {
                break;
            }
        }
        Ok(out)
    }

    async fn put_filter(&self, filter: &Filter) -> Result<(), AwsError> {
        self.puts.acquire().await;
        let transformation = MetricTransformation::builder()
            .metric_namespace(&filter.namespace)
            .metric_name(&filter.metric_name)
            .metric_value("1")
            .build()
            .map_err(|e| construction("PutMetricFilter", e.to_string()))?;
        let request = self
            .clients
            .logs(&self.region)
            .put_metric_filter()
            .log_group_name(&filter.log_group)
            .filter_name(&filter.name)
            .filter_pattern(&filter.pattern)
            .metric_transformations(transformation)
            .send();
        self.clients
            .call("logs", "PutMetricFilter", request)
            .await
            .map(|_| ())
    }

    async fn alarms(&self, names: &[String]) -> Result<Vec<ExistingAlarm>, AwsError> {
        let client = self.clients.cloudwatch(&self.region);
        let mut out = Vec::new();
        for chunk in names.chunks(100) {
            let request = client
                .describe_alarms()
                .set_alarm_names(Some(chunk.to_vec()))
                .max_records(100)
                .send();
            let page = self
                .clients
                .call("cloudwatch", "DescribeAlarms", request)
                .await?;
            for a in page.metric_alarms() {
                out.push(ExistingAlarm {
                    actions_enabled: a.actions_enabled().unwrap_or(true),
                    alarm: Alarm {
                        name: a.alarm_name().unwrap_or_default().to_owned(),
                        description: a.alarm_description().unwrap_or_default().to_owned(),
                        namespace: a.namespace().unwrap_or_default().to_owned(),
                        metric_name: a.metric_name().unwrap_or_default().to_owned(),
                        dimensions: a
                            .dimensions()
                            .iter()
                            .map(|d| {
                                (
                                    d.name().unwrap_or_default().to_owned(),
                                    d.value().unwrap_or_default().to_owned(),
                                )
                            })
                            .collect(),
                        statistic: a
                            .statistic()
                            .map(|s| s.as_str().to_owned())
                            .unwrap_or_default(),
                        comparison: a
                            .comparison_operator()
                            .map(|c| c.as_str().to_owned())
                            .unwrap_or_default(),
                        threshold: a.threshold().unwrap_or_default(),
                        period: a.period().unwrap_or_default(),
                        evaluation_periods: a.evaluation_periods().unwrap_or_default(),
                        datapoints_to_alarm: a.datapoints_to_alarm(),
                        actions: a.alarm_actions().to_vec(),
                        treat_missing_data: a.treat_missing_data().map(str::to_owned),
                    },
                });
            }
        }
        Ok(out)
    }

    async fn put_alarm(&self, alarm: &Alarm) -> Result<(), AwsError> {
        self.puts.acquire().await;
        let dimensions = alarm
            .dimensions
            .iter()
            .map(|(name, value)| Dimension::builder().name(name).value(value).build())
            .collect();
        let request = self
            .clients
            .cloudwatch(&self.region)
            .put_metric_alarm()
            .alarm_name(&alarm.name)
            .alarm_description(&alarm.description)
            .namespace(&alarm.namespace)
            .metric_name(&alarm.metric_name)
            .set_dimensions(Some(dimensions))
            .statistic(Statistic::from(alarm.statistic.as_str()))
            .comparison_operator(ComparisonOperator::from(alarm.comparison.as_str()))
            .threshold(alarm.threshold)
            .period(alarm.period)
            .evaluation_periods(alarm.evaluation_periods)
            .set_datapoints_to_alarm(alarm.datapoints_to_alarm)
            .set_alarm_actions(Some(alarm.actions.clone()))
            .actions_enabled(true)
            .set_treat_missing_data(alarm.treat_missing_data.clone())
            .send();
        self.clients
            .call("cloudwatch", "PutMetricAlarm", request)
            .await
            .map(|_| ())
    }

    async fn topic_attributes(
        &self,
        topic_arn: &str,
    ) -> Result<BTreeMap<String, String>, AwsError> {
        use crate::alerts::sinks::sns_api::{SnsApi, SnsClient};
        SnsClient::new(self.clients.clone())
            .topic_attributes(topic_arn)
            .await
    }

    async fn confirmed_subscriptions(&self, topic_arn: &str) -> Result<usize, AwsError> {
        let region = crate::alerts::sinks::sns_api::topic_region(topic_arn)
            .map_or_else(|| self.region.clone(), str::to_owned);
        let client = self.clients.sns(&region);
        let mut confirmed = 0;
        let mut token = None;
        for _ in 0..100 {
            let request = client
                .list_subscriptions_by_topic()
                .topic_arn(topic_arn)
                .set_next_token(token)
                .send();
            let page = self
                .clients
                .call("sns", "ListSubscriptionsByTopic", request)
                .await?;
            confirmed += page
                .subscriptions()
                .iter()
                .filter(|s| {
                    s.subscription_arn()
                        .is_some_and(|arn| arn.starts_with("arn:"))
                })
                .count();
            token = page.next_token().map(str::to_owned);
            if token.is_none() {
                break;
            }
        }
        Ok(confirmed)
    }

    async fn trail_log_groups(&self) -> Result<Vec<(String, String)>, AwsError> {
        let request = self
            .clients
            .cloudtrail(&self.region)
            .describe_trails()
            .include_shadow_trails(true)
            .send();
        let out = self
            .clients
            .call("cloudtrail", "DescribeTrails", request)
            .await?;
        Ok(out
            .trail_list()
            .iter()
            .filter_map(|t| {
                let group = t.cloud_watch_logs_log_group_arn()?;
                let trail = t.trail_arn().or(t.name())?;
                Some((trail.to_owned(), group.to_owned()))
            })
            .collect())
    }

    async fn trail_logging(&self, trail_arn: &str) -> Result<bool, AwsError> {
        let request = self
            .clients
            .cloudtrail(&self.region)
            .get_trail_status()
            .name(trail_arn)
            .send();
        let out = self
            .clients
            .call("cloudtrail", "GetTrailStatus", request)
            .await?;
        Ok(out.is_logging().unwrap_or(false))
    }
}
