//! What should exist: the configuration turned into metric filters and alarms.

use std::collections::BTreeMap;

use super::cis;
use crate::config::AlarmsConfig;

/// Ends the description of every alarm cloudwarden manages: an alarm
/// without it is someone else's and is never changed.
pub const MARKER: &str = "[managed by cloudwarden]";

/// Starts the name of every CIS filter and alarm cloudwarden creates.
pub const CIS_PREFIX: &str = "cloudwarden-cis-";

/// A metric filter that turns matching log events into a count.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    /// The log group it watches.
    pub log_group: String,
    /// Its name.
    pub name: String,
    /// Its filter pattern.
    pub pattern: String,
    /// The namespace of the metric it feeds.
    pub namespace: String,
    /// The metric's name.
    pub metric_name: String,
}

/// A metric alarm.
#[derive(Debug, Clone, PartialEq)]
pub struct Alarm {
    /// Its name.
    pub name: String,
    /// Its description, ending with [`MARKER`].
    pub description: String,
    /// The metric's namespace.
    pub namespace: String,
    /// The metric's name.
    pub metric_name: String,
    /// The metric's dimensions.
    pub dimensions: BTreeMap<String, String>,
    /// The statistic.
    pub statistic: String,
    /// The comparison operator.
    pub comparison: String,
    /// The threshold.
    pub threshold: f64,
    /// The period in seconds.
    pub period: i32,
    /// Periods evaluated.
    pub evaluation_periods: i32,
    /// Breaching periods that raise the alarm (`None`: all evaluated).
    pub datapoints_to_alarm: Option<i32>,
    /// Alarm actions.
    pub actions: Vec<String>,
    /// How missing data is treated (`None`: CloudWatch's `missing`).
    pub treat_missing_data: Option<String>,
}

/// Everything that should exist.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Desired {
    /// Metric filters.
    pub filters: Vec<Filter>,
    /// Alarms.
    pub alarms: Vec<Alarm>,
    /// The CIS topic and log group, whose wiring is checked.
    pub cis: Option<(String, String)>,
}

/// The filters and alarms `config` declares.
pub fn desired(config: &AlarmsConfig) -> Desired {
    let mut out = Desired::default();
    let cis_config = &config.cis;
    if let (true, Some(group), Some(topic)) = (
        cis_config.enabled,
        &cis_config.log_group,
        &cis_config.topic_arn,
    ) {
        out.cis = Some((group.clone(), topic.clone()));
        for control in cis::controls(cis_config.benchmark) {
            if !cis_config.controls.is_empty()
                && !cis_config.controls.iter().any(|c| c == control.id)
            {
                continue;
            }
            let name = format!("{CIS_PREFIX}{}", control.id);
            out.filters.push(Filter {
                log_group: group.clone(),
                name: name.clone(),
                pattern: control.pattern.clone(),
                namespace: cis_config.namespace.clone(),
                metric_name: control.metric_name.to_owned(),
            });
            out.alarms.push(Alarm {
                name,
                description: format!(
                    "CIS AWS Foundations {} {}: {} {MARKER}",
                    cis_config.benchmark.as_str(),
                    control.number,
                    control.title
                ),
                namespace: cis_config.namespace.clone(),
                metric_name: control.metric_name.to_owned(),
                dimensions: BTreeMap::new(),
                statistic: "Sum".to_owned(),
                comparison: "GreaterThanOrEqualToThreshold".to_owned(),
                threshold: cis_config
                    .thresholds
                    .get(control.id)
                    .copied()
                    .unwrap_or(cis::THRESHOLD),
                period: cis::PERIOD_SECONDS,
                evaluation_periods: cis::EVALUATION_PERIODS,
                datapoints_to_alarm: None,
                actions: vec![topic.clone()],
                treat_missing_data: Some("notBreaching".to_owned()),
            });
        }
    }
    for custom in &config.custom {
        let description = match &custom.description {
            Some(d) => format!("{d} {MARKER}"),
            None => MARKER.to_owned(),
        };
        out.alarms.push(Alarm {
            name: custom.name.clone(),
            description,
            namespace: custom.namespace.clone(),
            metric_name: custom.metric_name.clone(),
            dimensions: custom.dimensions.clone(),
            statistic: custom.statistic.clone(),
            comparison: custom.comparison.clone(),
            threshold: custom.threshold,
            period: custom.period,
            evaluation_periods: custom.evaluation_periods,
            datapoints_to_alarm: custom.datapoints_to_alarm,
            actions: custom.actions.clone(),
            treat_missing_data: custom.treat_missing_data.clone(),
        });
    }
    out
}
