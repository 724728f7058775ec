//! `cloudwarden alarms plan` and `apply`, the real binary against moto's
//! CloudWatch and CloudWatch Logs: the CIS set created and wired, drift
//! repaired, equivalent patterns left alone, other people's alarms untouched.

mod support;

use aws_sdk_cloudwatch::types::ComparisonOperator;
use cloudwarden::alarms::cis;
use support::moto::Moto;
use support::process::run;
use support::runtime;

const GROUP: &str = "aws-cloudtrail-logs";

struct World {
    cloudwatch: aws_sdk_cloudwatch::Client,
    logs: aws_sdk_cloudwatchlogs::Client,
    sns: aws_sdk_sns::Client,
    topic: String,
    dir: tempfile::TempDir,
}

/// A log group a trail delivers to, and a topic with a queue subscribed.
async fn world(moto: &Moto) -> World {
    let sdk = moto.sdk_config().await;
    let logs = aws_sdk_cloudwatchlogs::Client::new(&sdk);
    logs.create_log_group()
        .log_group_name(GROUP)
        .send()
        .await
        .unwrap();
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(true)
            .build(),
    );
    s3.create_bucket()
        .bucket("trail-bucket")
        .send()
        .await
        .unwrap();
    let trail = aws_sdk_cloudtrail::Client::new(&sdk);
    trail
        .create_trail()
        .name("management")
        .s3_bucket_name("trail-bucket")
        .cloud_watch_logs_log_group_arn(format!(
            "arn:aws:logs:us-east-1:123456789012:log-group:{GROUP}:*"
        ))
        .cloud_watch_logs_role_arn("arn:aws:iam::123456789012:role/trail-to-logs")
        .send()
        .await
        .unwrap();
    trail
        .start_logging()
        .name("management")
        .send()
        .await
        .unwrap();
    let sns = aws_sdk_sns::Client::new(&sdk);
    let topic = sns.create_topic().name("cis-alarms").send().await.unwrap();
    let topic = topic.topic_arn().unwrap().to_owned();
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    sqs.create_queue()
        .queue_name("oncall")
        .send()
        .await
        .unwrap();
    sns.subscribe()
        .topic_arn(&topic)
        .protocol("sqs")
        .endpoint("arn:aws:sqs:us-east-1:123456789012:oncall")
        .send()
        .await
        .unwrap();
    World {
        cloudwatch: aws_sdk_cloudwatch::Client::new(&sdk),
        logs,
        sns,
        topic,
        dir: tempfile::tempdir().unwrap(),
    }
}

fn config(moto: &Moto, w: &World, extra: &str) -> String {
    let text = format!(
        r#"[aws]
region = "us-east-1"
endpoint_url = "{}"

[alarms.cis]
enabled = true
log_group = "{GROUP}"
topic_arn = "{}"
benchmark = "v4"
{extra}
"#,
        moto.endpoint(),
        w.topic
    );
    let path = w.dir.path().join("cloudwarden.toml");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

fn alarms(args: &[&str]) -> (i32, String) {
    let out = run(
        args,
        &[
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
        ],
    );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

async fn alarm_list(w: &World) -> Vec<aws_sdk_cloudwatch::types::MetricAlarm> {
    let out = w
        .cloudwatch
        .describe_alarms()
        .max_records(100)
        .send()
        .await
        .unwrap();
    out.metric_alarms().to_vec()
}

async fn filter_list(w: &World) -> Vec<aws_sdk_cloudwatchlogs::types::MetricFilter> {
    let out = w
        .logs
        .describe_metric_filters()
        .log_group_name(GROUP)
        .send()
        .await
        .unwrap();
    out.metric_filters().to_vec()
}

#[test]
fn apply_creates_the_cis_set_wired_to_the_topic_and_then_has_nothing_to_do() {
    let moto = Moto::start();
    let rt = runtime();
    let w = rt.block_on(world(&moto));
    let path = config(&moto, &w, "");

    let (code, out) = alarms(&["alarms", "plan", "--config", &path]);
    assert_eq!(code, 2, "{out}");
    assert_eq!(
        out.lines()
            .filter(|l| l.starts_with("create alarm "))
            .count(),
        15,
        "{out}"
    );
    assert_eq!(
        out.lines()
            .filter(|l| l.starts_with("create metric filter "))
            .count(),
        15
    );
    assert!(
        rt.block_on(alarm_list(&w)).is_empty(),
        "plan changes nothing"
    );
    assert!(rt.block_on(filter_list(&w)).is_empty());

    let (code, out) = alarms(&["alarms", "apply", "--config", &path]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("30 change(s) made, 0 failed"), "{out}");
    assert!(
        !out.contains("warning:"),
        "correct wiring raises no warning: {out}"
    );
    let created = rt.block_on(alarm_list(&w));
    assert_eq!(created.len(), 15);
    let filters = rt.block_on(filter_list(&w));
    assert_eq!(filters.len(), 15);
    for alarm in &created {
        assert!(alarm.alarm_name().unwrap().starts_with("cloudwarden-cis-"));
        assert_eq!(alarm.alarm_actions(), std::slice::from_ref(&w.topic));
        assert_eq!(alarm.namespace(), Some("CISBenchmark"));
        assert_eq!(alarm.threshold(), Some(1.0));
        assert_eq!(alarm.period(), Some(300));
        assert_eq!(
            alarm.comparison_operator(),
            Some(&ComparisonOperator::GreaterThanOrEqualToThreshold)
        );
        let filter = filters
            .iter()
            .find(|f| f.filter_name() == alarm.alarm_name())
            .expect("each alarm has its filter");
        let metric = &filter.metric_transformations()[0];
        assert_eq!(
            Some(metric.metric_name()),
            alarm.metric_name(),
            "filter and alarm agree"
        );
        assert_eq!(metric.metric_namespace(), "CISBenchmark");
    }
    // Each filter has the benchmark's pattern, word for word.
    for control in cis::controls(cis::Benchmark::V4) {
        let name = format!("cloudwarden-cis-{}", control.id);
        let filter = filters
            .iter()
            .find(|f| f.filter_name() == Some(&name))
            .unwrap();
        assert_eq!(filter.filter_pattern(), Some(control.pattern.as_str()));
    }

    let (code, out) = alarms(&["alarms", "plan", "--config", &path]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("30 in place, 0 to change"), "{out}");
    let (code, out) = alarms(&["alarms", "apply", "--config", &path]);
    assert_eq!(code, 0);
    assert!(out.contains("0 change(s) made"), "{out}");
}

#[test]
fn drift_is_repaired_equivalent_patterns_are_not_drift_and_other_alarms_are_left_alone() {
    let moto = Moto::start();
    let rt = runtime();
    let w = rt.block_on(world(&moto));
    let custom = format!(
        r#"
[[alarms.custom]]
name = "web-cpu-high"
description = "Web server CPU above 75% for 10 minutes"
namespace = "AWS/EC2"
metric_name = "CPUUtilization"
dimensions = {{ InstanceId = "i-0123456789abcdef0" }}
statistic = "Average"
comparison = "GreaterThanThreshold"
threshold = 75
period = "5m"
evaluation_periods = 2
actions = ["{}"]
"#,
        w.topic
    );
    let path = config(&moto, &w, &custom);
    let (code, out) = alarms(&["alarms", "apply", "--config", &path]);
    assert_eq!(code, 0, "{out}");

    let cpu = rt
        .block_on(alarm_list(&w))
        .into_iter()
        .find(|a| a.alarm_name() == Some("web-cpu-high"))
        .expect("the custom alarm exists");
    assert_eq!(cpu.metric_name(), Some("CPUUtilization"));
    assert_eq!(cpu.threshold(), Some(75.0));
    assert_eq!(cpu.evaluation_periods(), Some(2));
    assert_eq!(cpu.dimensions()[0].value(), Some("i-0123456789abcdef0"));

    let names: Vec<String> = rt
        .block_on(alarm_list(&w))
        .iter()
        .filter_map(|a| a.alarm_name().map(str::to_owned))
        .filter(|n| n.starts_with("cloudwarden-cis-"))
        .collect();
    let filters = rt.block_on(filter_list(&w));
    let trail_filter = filters
        .iter()
        .find(|f| f.filter_pattern().unwrap().contains("StopLogging"))
        .unwrap()
        .filter_name()
        .unwrap()
        .to_owned();
    let edited = names.iter().find(|n| **n != trail_filter).unwrap().clone();
    let deleted = names
        .iter()
        .rev()
        .find(|n| **n != trail_filter && **n != edited)
        .unwrap()
        .clone();
    let silenced = "web-cpu-high";
    rt.block_on(async {
        // Someone deletes an alarm, edits a pattern, removes an action and
        // rewrites a pattern in another order and quoting.
        w.cloudwatch.delete_alarms().alarm_names(&deleted).send().await.unwrap();
        put_filter(&w, &edited, "{ $.eventName = \"SomethingHarmless\" }").await;
        put_filter(
            &w,
            &trail_filter,
            "{$.eventName=\"StopLogging\"||$.eventName=\"StartLogging\"||$.eventName=DeleteTrail||($.eventName=UpdateTrail)||$.eventName = CreateTrail}",
        )
        .await;
        w.cloudwatch
            .put_metric_alarm()
            .alarm_name(silenced)
            .alarm_description(cpu.alarm_description().unwrap())
            .namespace("AWS/EC2")
            .metric_name("CPUUtilization")
            .dimensions(cpu.dimensions()[0].clone())
            .statistic(aws_sdk_cloudwatch::types::Statistic::Average)
            .comparison_operator(ComparisonOperator::GreaterThanThreshold)
            .threshold(75.0)
            .period(300)
            .evaluation_periods(2)
            .send()
            .await
            .unwrap();
        // Another team's alarm, and one in the way of a declared name.
        w.cloudwatch
            .put_metric_alarm()
            .alarm_name("team-billing")
            .namespace("AWS/Billing")
            .metric_name("EstimatedCharges")
            .statistic(aws_sdk_cloudwatch::types::Statistic::Maximum)
            .comparison_operator(ComparisonOperator::GreaterThanThreshold)
            .threshold(1000.0)
            .period(21600)
            .evaluation_periods(1)
            .send()
            .await
            .unwrap();
    });

    let (code, out) = alarms(&["alarms", "plan", "--config", &path]);
    assert_eq!(code, 2, "{out}");
    let changes: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("create ") || l.starts_with("repair "))
        .collect();
    assert_eq!(changes.len(), 3, "{out}");
    assert!(
        changes.contains(&format!("create alarm {deleted}").as_str()),
        "{out}"
    );
    assert!(
        changes
            .iter()
            .any(|l| l.starts_with(&format!("repair metric filter {edited}: pattern is"))),
        "{out}"
    );
    assert!(
        changes
            .iter()
            .any(|l| l.starts_with("repair alarm web-cpu-high: actions")),
        "{out}"
    );
    assert!(
        !out.contains(&format!("filter {trail_filter}")),
        "an equivalent pattern is not drift: {out}"
    );
    assert!(!out.contains("team-billing"));

    let (code, out) = alarms(&["alarms", "apply", "--config", &path]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("3 change(s) made, 0 failed"), "{out}");
    let (code, out) = alarms(&["alarms", "plan", "--config", &path]);
    assert_eq!(code, 0, "{out}");
    let after = rt.block_on(alarm_list(&w));
    let billing = after
        .iter()
        .find(|a| a.alarm_name() == Some("team-billing"))
        .unwrap();
    assert_eq!(
        billing.threshold(),
        Some(1000.0),
        "another team's alarm is untouched"
    );
    assert!(billing.alarm_actions().is_empty());
    let cpu = after
        .iter()
        .find(|a| a.alarm_name() == Some(silenced))
        .unwrap();
    assert_eq!(cpu.alarm_actions(), std::slice::from_ref(&w.topic));
}

#[test]
fn an_alarm_in_the_way_is_reported_and_wiring_problems_are_named() {
    let moto = Moto::start();
    let rt = runtime();
    let w = rt.block_on(world(&moto));
    rt.block_on(async {
        w.cloudwatch
            .put_metric_alarm()
            .alarm_name("web-cpu-high")
            .alarm_description("hand-made")
            .namespace("AWS/EC2")
            .metric_name("CPUUtilization")
            .statistic(aws_sdk_cloudwatch::types::Statistic::Average)
            .comparison_operator(ComparisonOperator::GreaterThanThreshold)
            .threshold(90.0)
            .period(60)
            .evaluation_periods(1)
            .send()
            .await
            .unwrap();
        w.logs
            .create_log_group()
            .log_group_name("no-trail-here")
            .send()
            .await
            .unwrap();
    });
    let custom = "[[alarms.custom]]\nname = \"web-cpu-high\"\nnamespace = \"AWS/EC2\"\nmetric_name = \"CPUUtilization\"\nstatistic = \"Average\"\ncomparison = \"GreaterThanThreshold\"\nthreshold = 75\nperiod = \"5m\"\nevaluation_periods = 1\n";
    let path = config(&moto, &w, custom);
    let text = std::fs::read_to_string(&path).unwrap().replace(
        &format!("log_group = \"{GROUP}\""),
        "log_group = \"no-trail-here\"",
    );
    std::fs::write(&path, text).unwrap();
    let (code, out) = alarms(&["alarms", "apply", "--config", &path]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("warning: alarm web-cpu-high: exists and is not cloudwarden's"),
        "{out}"
    );
    assert!(
        out.contains("warning: log group no-trail-here: no trail delivers to it"),
        "{out}"
    );
    let cpu = rt
        .block_on(alarm_list(&w))
        .into_iter()
        .find(|a| a.alarm_name() == Some("web-cpu-high"))
        .unwrap();
    assert_eq!(cpu.threshold(), Some(90.0), "left alone");
}

#[test]
fn declared_alarms_are_validated_with_every_problem_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    let actions: Vec<String> = (0..6)
        .map(|i| format!("\"arn:aws:sns:us-east-1:123456789012:t{i}\""))
        .collect();
    std::fs::write(
        &path,
        format!(
            "[[alarms.custom]]\nname = \"x\"\nnamespace = \"AWS/EC2\"\nmetric_name = \"CPUUtilization\"\nstatistic = \"Median\"\ncomparison = \"GreaterThanThreshold\"\nthreshold = 1\nperiod = \"5m\"\nevaluation_periods = 300\nactions = [{}]\n\n[alarms.cis]\nbenchmark = \"v9\"\n",
            actions.join(", ")
        ),
    )
    .unwrap();
    let out = run(&["validate", "--config", &path.display().to_string()], &[]);
    assert_eq!(out.status.code(), Some(78));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for needle in [
        "c.toml:5:",
        "alarms.custom[0].statistic",
        "alarms.custom[0].evaluation_periods: period × evaluation_periods is 90000 s",
        "alarms.custom[0].actions: 6 actions",
        "alarms.cis.benchmark: unknown benchmark \"v9\"",
    ] {
        assert!(stderr.contains(needle), "{needle}: {stderr}");
    }
}

#[test]
fn test_pattern_evaluates_a_pattern_against_events() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.json");
    std::fs::write(
        &path,
        r#"{"Records":[{"eventName":"ConsoleLogin","additionalEventData":{"MFAUsed":"No"}},{"eventName":"ConsoleLogin","additionalEventData":{"MFAUsed":"Yes"}},{"eventName":"GetObject"}]}"#,
    )
    .unwrap();
    let file = path.display().to_string();
    let pattern =
        r#"{ ($.eventName = "ConsoleLogin") && ($.additionalEventData.MFAUsed != "Yes") }"#;
    let out = run(&["alarms", "test-pattern", pattern, &file], &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        stdout.contains("record 0 matches") && !stdout.contains("record 1 matches"),
        "{stdout}"
    );
    assert!(stdout.contains("1 of 3 events match"), "{stdout}");
    let out = run(&["alarms", "test-pattern", "{ $.eventName = ", &file], &[]);
    assert_eq!(out.status.code(), Some(78));
}

async fn put_filter(w: &World, name: &str, pattern: &str) {
    let existing = filter_list(w).await;
    let metric = existing
        .iter()
        .find(|f| f.filter_name() == Some(name))
        .unwrap()
        .metric_transformations()[0]
        .clone();
    w.logs
        .put_metric_filter()
        .log_group_name(GROUP)
        .filter_name(name)
        .filter_pattern(pattern)
        .metric_transformations(metric)
        .send()
        .await
        .unwrap();
}

#[test]
fn the_daemon_repairs_a_deleted_or_taken_over_alarm_and_alerts_on_drift_and_new_wiring_problems() {
    let moto = Moto::start();
    let rt = runtime();
    let w = rt.block_on(world(&moto));
    let text = format!(
        r#"[aws]
region = "us-east-1"
endpoint_url = "{}"

[state]
path = "{{dir}}/state.redb"

[metrics]
listen = "127.0.0.1:0"

[log]
format = "json"

[alerts]
file = "{{dir}}/alerts.jsonl"

[alarms]
interval = "10s"

[alarms.cis]
enabled = true
log_group = "{GROUP}"
topic_arn = "{}"
"#,
        moto.endpoint(),
        w.topic
    );
    let daemon = support::process::DaemonProcess::start(
        &text,
        &[
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
        ],
    );
    let first = daemon
        .wait_for_log("alarms reconciled", std::time::Duration::from_secs(30))
        .expect("a first pass at start");
    assert!(first.contains("\"changed\":30"), "{first}");
    assert_eq!(rt.block_on(alarm_list(&w)).len(), 15);
    let gone = "cloudwarden-cis-root-account-usage";
    rt.block_on(async {
        w.cloudwatch
            .delete_alarms()
            .alarm_names(gone)
            .send()
            .await
            .unwrap();
    });
    let path = daemon.dir().join("alerts.jsonl");
    let alerts = support::alerts::wait_for(&path, std::time::Duration::from_secs(40), |a| {
        a.iter()
            .any(|a| a["rule"]["id"] == "cloudwarden-alarm-drift")
    });
    let drift: Vec<_> = alerts
        .iter()
        .filter(|a| a["rule"]["id"] == "cloudwarden-alarm-drift")
        .collect();
    assert_eq!(drift.len(), 1, "{alerts:?}");
    assert_eq!(drift[0]["rule"]["level"], "high");
    assert!(
        drift[0]["rule"]["description"]
            .as_str()
            .unwrap()
            .contains(&format!("The alarm {gone} was deleted.")),
        "{}",
        drift[0]
    );
    assert!(
        rt.block_on(alarm_list(&w))
            .iter()
            .any(|a| a.alarm_name() == Some(gone)),
        "put back"
    );
    // Overwriting an owned alarm without the ownership marker does not take
    // it over: it is drift, repaired and alerted.
    rt.block_on(async {
        let alarm = alarm_list(&w)
            .await
            .into_iter()
            .find(|a| a.alarm_name() == Some(gone))
            .unwrap();
        w.cloudwatch
            .put_metric_alarm()
            .alarm_name(gone)
            .alarm_description("mine now")
            .namespace(alarm.namespace().unwrap())
            .metric_name(alarm.metric_name().unwrap())
            .statistic(alarm.statistic().unwrap().clone())
            .comparison_operator(alarm.comparison_operator().unwrap().clone())
            .threshold(1000.0)
            .period(alarm.period().unwrap())
            .evaluation_periods(alarm.evaluation_periods().unwrap())
            .send()
            .await
            .unwrap();
    });
    let alerts = support::alerts::wait_for(&path, std::time::Duration::from_secs(40), |a| {
        a.iter()
            .filter(|a| a["rule"]["id"] == "cloudwarden-alarm-drift")
            .count()
            >= 2
    });
    let taken = alerts
        .iter()
        .filter(|a| a["rule"]["id"] == "cloudwarden-alarm-drift")
        .nth(1)
        .unwrap();
    let description = taken["rule"]["description"].as_str().unwrap();
    assert!(
        description.contains(&format!("The alarm {gone} was changed")),
        "{description}"
    );
    assert!(description.contains("threshold is 1000"), "{description}");
    let restored = rt
        .block_on(alarm_list(&w))
        .into_iter()
        .find(|a| a.alarm_name() == Some(gone))
        .unwrap();
    assert!(
        restored
            .alarm_description()
            .unwrap()
            .contains("[managed by cloudwarden]")
    );
    assert_eq!(restored.threshold(), Some(1.0));
    // A wiring problem that appears raises one alert: nobody is subscribed
    // to the alarm topic any more.
    rt.block_on(async {
        let subscriptions = w
            .sns
            .list_subscriptions_by_topic()
            .topic_arn(&w.topic)
            .send()
            .await
            .unwrap();
        for s in subscriptions.subscriptions() {
            w.sns
                .unsubscribe()
                .subscription_arn(s.subscription_arn().unwrap())
                .send()
                .await
                .unwrap();
        }
    });
    let alerts = support::alerts::wait_for(&path, std::time::Duration::from_secs(40), |a| {
        a.iter()
            .any(|a| a["rule"]["id"] == "cloudwarden-alarm-wiring")
    });
    let wiring: Vec<_> = alerts
        .iter()
        .filter(|a| a["rule"]["id"] == "cloudwarden-alarm-wiring")
        .collect();
    assert_eq!(wiring.len(), 1, "{wiring:?}");
    assert!(
        wiring[0]["rule"]["description"]
            .as_str()
            .unwrap()
            .contains("no confirmed subscription"),
        "{}",
        wiring[0]
    );
    // A trail that stops logging is one too (GetTrailStatus).
    rt.block_on(async {
        let sdk = moto.sdk_config().await;
        aws_sdk_cloudtrail::Client::new(&sdk)
            .stop_logging()
            .name("management")
            .send()
            .await
            .unwrap();
    });
    let alerts = support::alerts::wait_for(&path, std::time::Duration::from_secs(40), |a| {
        a.iter()
            .filter(|a| a["rule"]["id"] == "cloudwarden-alarm-wiring")
            .count()
            >= 2
    });
    assert!(
        alerts
            .iter()
            .any(|a| a["rule"]["id"] == "cloudwarden-alarm-wiring"
                && a["rule"]["description"]
                    .as_str()
                    .unwrap()
                    .contains("is not logging (GetTrailStatus)")),
        "{alerts:?}"
    );
    // Each once after another pass: it alerts when it appears, not every pass.
    let passes = daemon
        .logs()
        .iter()
        .filter(|l| l.contains("alarms reconciled"))
        .count();
    while daemon
        .logs()
        .iter()
        .filter(|l| l.contains("alarms reconciled"))
        .count()
        <= passes
    {
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let again = support::alerts::read(&path);
    assert_eq!(
        again
            .iter()
            .filter(|a| a["rule"]["id"] == "cloudwarden-alarm-wiring")
            .count(),
        2
    );
    let page = support::http::get(daemon.admin_addr(), "/metrics").1;
    assert_eq!(
        support::alerts::metric(&page, "cloudwarden_alarm_changes_total", "kind=\"drift\""),
        2.0,
        "{page}"
    );
    assert_eq!(
        support::alerts::metric(&page, "cloudwarden_alarm_changes_total", "kind=\"created\""),
        30.0
    );
    assert_eq!(
        support::alerts::metric(&page, "cloudwarden_alarms_managed", ""),
        30.0
    );
}
