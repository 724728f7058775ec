//! Stage two for `[alarms]`: the CIS monitoring set and declared alarms.

use std::collections::BTreeMap;
use std::time::Duration;

use figment::value::Value;

use super::checker::Checker;
use super::formats;
use super::key_path::KeyPath;
use super::raw::{RawAlarms, RawCis, RawCustomAlarm};
use super::{AlarmsConfig, CisConfig, CustomAlarmConfig};
use crate::alarms::cis::{self, Benchmark};

/// CloudWatch evaluates at most a day of periods shorter than an hour,
/// and a week of longer ones.
const MAX_EVALUATED_SECONDS: i64 = 86_400;
const MAX_EVALUATED_SECONDS_HOURLY: i64 = 7 * 86_400;

/// PutMetricAlarm takes at most five alarm actions.
const MAX_ACTIONS: usize = 5;

const STATISTICS: [&str; 5] = ["Average", "Sum", "Minimum", "Maximum", "SampleCount"];
const COMPARISONS: [&str; 4] = [
    "GreaterThanOrEqualToThreshold",
    "GreaterThanThreshold",
    "LessThanThreshold",
    "LessThanOrEqualToThreshold",
];
const MISSING_DATA: [&str; 4] = ["missing", "notBreaching", "breaching", "ignore"];

/// Validates `[alarms]`; `None` means problems were recorded in `c`.
pub(super) fn alarms(c: &mut Checker<'_>, raw: Option<&Value>) -> Option<AlarmsConfig> {
    let k = KeyPath::root("alarms");
    let r: RawAlarms = c.section(&k, raw);
    let interval = c.duration(
        &k.key("interval"),
        &r.interval,
        Duration::from_secs(10),
        Duration::from_secs(86_400),
    );
    let interval = c.required(&k.key("interval"), interval, &r.interval);
    let cis_config = cis_section(c, &k.key("cis"), r.cis.as_ref());
    let mut custom = Some(Vec::new());
    let mut names = BTreeMap::new();
    for (i, entry) in r.custom.iter().flatten().enumerate() {
        let key = k.key("custom").index(i);
        let alarm = custom_alarm(c, &key, entry);
        if let Some(alarm) = &alarm {
            if let Some(first) = names.insert(alarm.name.clone(), i) {
                c.report(
                    &key.key("name"),
                    format!("the name is already used by alarms.custom[{first}]"),
                );
                custom = None;
            }
        }
        match (custom.as_mut(), alarm) {
            (Some(list), Some(alarm)) => list.push(alarm),
            _ => custom = None,
        }
    }
    Some(AlarmsConfig {
        interval: interval?,
        cis: cis_config?,
        custom: custom?,
    })
}

fn cis_section(c: &mut Checker<'_>, ck: &KeyPath, raw: Option<&Value>) -> Option<CisConfig> {
    let r: RawCis = c.section(ck, raw);
    let enabled: Option<bool> = c.value(&ck.key("enabled"), &r.enabled);
    let log_group = c.parsed(&ck.key("log_group"), &r.log_group, formats::log_group);
    let topic_arn = c.parsed(&ck.key("topic_arn"), &r.topic_arn, formats::topic_arn);
    let namespace = c.parsed(&ck.key("namespace"), &r.namespace, namespace);
    let benchmark = c.parsed(&ck.key("benchmark"), &r.benchmark, |t| {
        Benchmark::parse(t).ok_or_else(|| {
            format!(
                "unknown benchmark \"{t}\" (expected one of: {})",
                Benchmark::NAMES.join(", ")
            )
        })
    });
    let controls: Option<Vec<String>> = c.value(&ck.key("controls"), &r.controls);
    let thresholds: Option<BTreeMap<String, f64>> = c.value(&ck.key("thresholds"), &r.thresholds);
    let mut bad = (r.log_group.is_some() && log_group.is_none())
        || (r.topic_arn.is_some() && topic_arn.is_none())
        || (r.namespace.is_some() && namespace.is_none())
        || (r.benchmark.is_some() && benchmark.is_none())
        || (r.controls.is_some() && controls.is_none())
        || (r.thresholds.is_some() && thresholds.is_none());
    let known = cis::ids();
    for id in controls.iter().flatten() {
        if !known.contains(&id.as_str()) {
            c.report(
                &ck.key("controls"),
                format!(
                    "unknown control \"{id}\" (expected one of: {})",
                    known.join(", ")
                ),
            );
            bad = true;
        }
    }
    for (id, threshold) in thresholds.iter().flatten() {
        if !known.contains(&id.as_str()) {
            c.report(
                &ck.key("thresholds").key(id),
                format!("unknown control (expected one of: {})", known.join(", ")),
            );
            bad = true;
        } else if !threshold.is_finite() || *threshold < 1.0 {
            c.report(
                &ck.key("thresholds").key(id),
                "a threshold must be a number of events, 1 or more",
            );
            bad = true;
        }
    }
    let enabled = enabled.unwrap_or(false);
    if enabled {
        for (name, leaf) in [("log_group", &r.log_group), ("topic_arn", &r.topic_arn)] {
            if leaf.is_none() {
                c.report(
                    &ck.key(name),
                    "missing: required when alarms.cis.enabled = true",
                );
            }
        }
    }
    if bad || (enabled && (log_group.is_none() || topic_arn.is_none())) {
        return None;
    }
    let defaults = CisConfig::default();
    Some(CisConfig {
        enabled,
        log_group,
        topic_arn,
        namespace: namespace.unwrap_or(defaults.namespace),
        benchmark: benchmark.unwrap_or(defaults.benchmark),
        controls: controls.unwrap_or_default(),
        thresholds: thresholds.unwrap_or_default(),
    })
}

fn custom_alarm(c: &mut Checker<'_>, k: &KeyPath, entry: &Value) -> Option<CustomAlarmConfig> {
    let e: RawCustomAlarm = c.section(k, Some(entry));
    let name = c.parsed(&k.key("name"), &e.name, alarm_name);
    let name = c.required(&k.key("name"), name, &e.name);
    let description = c.parsed(&k.key("description"), &e.description, formats::non_empty);
    let ns = c.parsed(&k.key("namespace"), &e.namespace, namespace);
    let ns = c.required(&k.key("namespace"), ns, &e.namespace);
    let metric = c.parsed(&k.key("metric_name"), &e.metric_name, formats::non_empty);
    let metric = c.required(&k.key("metric_name"), metric, &e.metric_name);
    let dimensions: Option<BTreeMap<String, String>> = c.value(&k.key("dimensions"), &e.dimensions);
    let statistic = c.parsed(&k.key("statistic"), &e.statistic, |t| {
        choice(t, &STATISTICS)
    });
    let statistic = c.required(&k.key("statistic"), statistic, &e.statistic);
    let comparison = c.parsed(&k.key("comparison"), &e.comparison, |t| {
        choice(t, &COMPARISONS)
    });
    let comparison = c.required(&k.key("comparison"), comparison, &e.comparison);
    let threshold: Option<f64> = c.value(&k.key("threshold"), &e.threshold);
    let threshold = c.required(&k.key("threshold"), threshold, &e.threshold);
    let period = c.duration(
        &k.key("period"),
        &e.period,
        Duration::from_secs(10),
        Duration::from_secs(86_400),
    );
    let period = c.required(&k.key("period"), period, &e.period);
    let evaluations = c.count(&k.key("evaluation_periods"), &e.evaluation_periods, 1, 1440);
    let evaluations = c.required(
        &k.key("evaluation_periods"),
        evaluations,
        &e.evaluation_periods,
    );
    let datapoints = c.count(
        &k.key("datapoints_to_alarm"),
        &e.datapoints_to_alarm,
        1,
        1440,
    );
    let actions: Option<Vec<String>> = c.value(&k.key("actions"), &e.actions);
    let missing = c.parsed(&k.key("treat_missing_data"), &e.treat_missing_data, |t| {
        choice(t, &MISSING_DATA)
    });
    let mut bad = (e.description.is_some() && description.is_none())
        || (e.dimensions.is_some() && dimensions.is_none())
        || (e.datapoints_to_alarm.is_some() && datapoints.is_none())
        || (e.actions.is_some() && actions.is_none())
        || (e.treat_missing_data.is_some() && missing.is_none());
    if let Some(period) = period {
        let secs = period.as_secs();
        if !(secs == 10 || secs == 20 || secs == 30 || secs % 60 == 0) || period.subsec_nanos() != 0
        {
            c.report(
                &k.key("period"),
                "a period must be 10s, 20s, 30s or a whole number of minutes",
            );
            bad = true;
        }
        if let Some(n) = evaluations {
            let evaluated = i64::try_from(secs)
                .unwrap_or(i64::MAX)
                .saturating_mul(i64::try_from(n).unwrap_or(i64::MAX));
            let (limit, span) = if secs >= 3600 {
                (
                    MAX_EVALUATED_SECONDS_HOURLY,
                    "a week (604800 s) of periods of an hour or more",
                )
            } else {
                (
                    MAX_EVALUATED_SECONDS,
                    "a day (86400 s) of periods shorter than an hour",
                )
            };
            if evaluated > limit {
                c.report(
                    &k.key("evaluation_periods"),
                    format!(
                        "period × evaluation_periods is {evaluated} s; CloudWatch evaluates at most {span}"
                    ),
                );
                bad = true;
            }
        }
    }
    if let (Some(d), Some(n)) = (datapoints, evaluations) {
        if d > n {
            c.report(
                &k.key("datapoints_to_alarm"),
                format!("{d} is more than evaluation_periods ({n})"),
            );
            bad = true;
        }
    }
    if let Some(actions) = &actions {
        if actions.len() > MAX_ACTIONS {
            c.report(
                &k.key("actions"),
                format!(
                    "{} actions; CloudWatch takes at most {MAX_ACTIONS}",
                    actions.len()
                ),
            );
            bad = true;
        }
        for action in actions {
            if !action.starts_with("arn:") {
                c.report(&k.key("actions"), format!("\"{action}\" is not an ARN"));
                bad = true;
            }
        }
    }
    if bad {
        return None;
    }
    Some(CustomAlarmConfig {
        name: name?,
        description,
        namespace: ns?,
        metric_name: metric?,
        dimensions: dimensions.unwrap_or_default(),
        statistic: statistic?,
        comparison: comparison?,
        threshold: threshold?,
        period: i32::try_from(period?.as_secs()).ok()?,
        evaluation_periods: i32::try_from(evaluations?).ok()?,
        datapoints_to_alarm: datapoints.and_then(|d| i32::try_from(d).ok()),
        actions: actions.unwrap_or_default(),
        treat_missing_data: missing,
    })
}

fn choice(text: &str, choices: &[&str]) -> Result<String, String> {
    choices
        .iter()
        .find(|c| **c == text)
        .map(|c| (*c).to_owned())
        .ok_or_else(|| format!("\"{text}\" is not one of: {}", choices.join(", ")))
}

fn namespace(text: &str) -> Result<String, String> {
    if text.is_empty() || text.len() > 255 || text.starts_with(':') {
        return Err(format!("\"{text}\" is not a CloudWatch metric namespace"));
    }
    Ok(text.to_owned())
}

fn alarm_name(text: &str) -> Result<String, String> {
    if text.trim().is_empty() || text.len() > 255 || text.chars().any(char::is_control) {
        return Err(format!(
            "\"{text}\" is not an alarm name (1 to 255 characters, no control characters)"
        ));
    }
    Ok(text.to_owned())
}
