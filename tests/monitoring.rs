//! The monitoring that ships in `deploy/monitoring/`: every metric the
//! Grafana dashboard and the Prometheus alerting rules refer to is one a
//! running daemon exports, and both files parse. A daemon with a source of
//! every kind, SNS and file alerts and the CIS alarms runs against moto and
//! the LookupEvents server, and its `/metrics` page is the reference.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use support::cloudtrail_server::CloudTrailServer;
use support::http::get;
use support::moto::Moto;
use support::process::DaemonProcess;
use support::runtime;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The metric names an expression refers to.
fn referenced(expr: &str, into: &mut BTreeSet<String>) {
    let names = regex::Regex::new(r"\b(cloudwarden_[a-z0-9_]+|process_[a-z0-9_]+|up)\b").unwrap();
    for found in names.find_iter(expr) {
        into.insert(found.as_str().to_owned());
    }
}

/// Every `expr` string in a JSON document (Grafana targets).
fn json_exprs(value: &serde_json::Value, into: &mut BTreeSet<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("expr" | "query", serde_json::Value::String(expr)) => referenced(expr, into),
                    _ => json_exprs(value, into),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| json_exprs(v, into)),
        _ => {}
    }
}

/// Every rule `expr` of a rules file (`groups:` at the top, or under `spec:`).
fn rule_exprs(text: &str, into: &mut BTreeSet<String>) -> usize {
    let docs = yaml_rust2::YamlLoader::load_from_str(text).expect("the rules file is YAML");
    let doc = &docs[0];
    let groups = if doc["groups"].is_badvalue() {
        &doc["spec"]["groups"]
    } else {
        &doc["groups"]
    };
    let mut rules = 0;
    for group in groups.as_vec().expect("groups") {
        for rule in group["rules"].as_vec().expect("rules") {
            let expr = rule["expr"].as_str().expect("every rule has an expr");
            assert!(
                rule["alert"].as_str().is_some(),
                "every rule is an alert: {expr}"
            );
            referenced(expr, into);
            rules += 1;
        }
    }
    rules
}

/// The metric names on a `/metrics` page; a histogram's series count
/// under its own name too.
fn exported(page: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in page
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let name = line.split(['{', ' ']).next().unwrap_or_default().to_owned();
        for suffix in ["_bucket", "_sum", "_count"] {
            if let Some(base) = name.strip_suffix(suffix) {
                names.insert(base.to_owned());
            }
        }
        names.insert(name);
    }
    names
}

#[test]
fn every_metric_the_dashboard_and_alert_rules_use_is_exported() {
    let moto = Moto::start();
    let server = CloudTrailServer::start();
    // Events that raise an alert, repeat it, and meet a suppression, so that
    // the series labelled by rule exist.
    for (id, user) in [("m-1", "tester"), ("m-2", "tester"), ("m-3", "quiet")] {
        let time = jiff::Timestamp::now()
            .strftime("%Y-%m-%dT%H:%M:%SZ")
            .to_string();
        server.add(
            "us-east-1",
            serde_json::json!({
                "eventVersion": "1.08", "eventTime": time, "eventSource": "test.amazonaws.com",
                "eventName": "DescribeThings", "awsRegion": "us-east-1", "sourceIPAddress": "203.0.113.10",
                "userIdentity": {"type": "IAMUser", "arn": format!("arn:aws:iam::123456789012:user/{user}"), "accountId": "123456789012"},
                "eventID": id, "eventType": "AwsApiCall", "recipientAccountId": "123456789012"
            }),
        );
    }
    let rt = runtime();
    let (queue, events, topic) = rt.block_on(async {
        let sdk = moto.sdk_config().await;
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        let queue = |name: &'static str| {
            let sqs = sqs.clone();
            async move {
                sqs.create_queue()
                    .queue_name(name)
                    .send()
                    .await
                    .unwrap()
                    .queue_url()
                    .unwrap()
                    .to_owned()
            }
        };
        let logs = aws_sdk_cloudwatchlogs::Client::new(&sdk);
        logs.create_log_group()
            .log_group_name("trail-logs")
            .send()
            .await
            .unwrap();
        let sns = aws_sdk_sns::Client::new(&sdk);
        let topic = sns.create_topic().name("alerts").send().await.unwrap();
        (
            queue("files").await,
            queue("events").await,
            topic.topic_arn().unwrap().to_owned(),
        )
    });
    let missing = events.replace("/events", "/no-such-queue");
    let sources = format!(
        r#"[[sources]]
kind = "cloudtrail_lookup"
name = "lookup"
interval = "1s"
global_events = false

[[sources]]
kind = "cloudwatch_logs"
name = "logs"
log_group = "trail-logs"
interval = "1s"

[[sources]]
kind = "s3_sqs"
name = "files"
queue_url = "{queue}"

[[sources]]
kind = "eventbridge_sqs"
name = "events"
queue_url = "{events}"

# A queue that does not exist: AWS errors are counted as they happen, so
# one source that fails makes the error series exist.
[[sources]]
kind = "eventbridge_sqs"
name = "missing"
queue_url = "{missing}"

[[alerts.sns]]
topic_arn = "{topic}"

[[alerts.suppress]]
reason = "a quiet user"
principal = "arn:aws:iam::123456789012:user/quiet"

[alarms]
interval = "10s"

[posture]
enabled = true
regions = ["us-east-1"]

[[response.actions]]
action = "quarantine_principal"
rules = ["7c2e9b14-5d3a-4f8e-a6b1-0e9d8c7f6a51"]

[alarms.cis]
enabled = true
log_group = "trail-logs"
topic_arn = "{topic}"
"#
    );
    let extra = format!("\n[aws.endpoints]\ncloudtrail = \"{}\"", server.endpoint());
    let config = support::daemon_config(
        &moto.endpoint(),
        &extra,
        support::EVERY_TEST_EVENT,
        "file = \"{dir}/alerts.jsonl\"\ndedup_window = \"1h\"\n",
        &sources,
    );
    let daemon = DaemonProcess::start(&config, &[]);
    daemon
        .wait_for_log("alarms reconciled", Duration::from_secs(60))
        .expect("a reconciler pass");
    daemon
        .wait_for_log("posture swept", Duration::from_secs(60))
        .expect("a posture sweep");
    support::alerts::wait_for(
        &daemon.dir().join("alerts.jsonl"),
        Duration::from_secs(60),
        |a| !a.is_empty(),
    );
    std::thread::sleep(Duration::from_secs(2));
    let page = get(daemon.admin_addr(), "/metrics").1;
    let exported = exported(&page);

    let mut wanted = BTreeSet::new();
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(format!(
            "{ROOT}/deploy/monitoring/cloudwarden-dashboard.json"
        ))
        .unwrap(),
    )
    .expect("the dashboard is JSON");
    json_exprs(&dashboard, &mut wanted);
    let plain = rule_exprs(
        &std::fs::read_to_string(format!("{ROOT}/deploy/monitoring/cloudwarden-rules.yml"))
            .unwrap(),
        &mut wanted,
    );
    let operator = rule_exprs(
        &std::fs::read_to_string(format!("{ROOT}/deploy/monitoring/prometheus-rule.yaml")).unwrap(),
        &mut wanted,
    );
    assert_eq!(plain, operator, "the PrometheusRule holds the same rules");
    assert!(plain >= 10, "{plain} alerting rules");
    // `up` is Prometheus's own, about the scrape.
    wanted.remove("up");
    let missing: Vec<&String> = wanted.iter().filter(|m| !exported.contains(*m)).collect();
    assert!(
        missing.is_empty(),
        "referenced but not exported: {missing:?}\nexported: {exported:?}"
    );
}
