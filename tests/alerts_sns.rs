//! Alerts published to SNS by the real binary, read back from an SQS queue
//! subscribed to the topic in moto: content, attributes, dedup windows,
//! suppressions, an SNS outage with a kill in the middle, and a topic that
//! does not exist.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aws_sdk_cloudwatchlogs::types::InputLogEvent;
use serde_json::{Value, json};
use support::alerts::{metric, wait_delivered};
use support::http::get;
use support::moto::Moto;
use support::process::{DaemonProcess, run};
use support::proxy::Proxy;
use support::{EVERY_TEST_EVENT, daemon_config, runtime};

const GROUP: &str = "aws-cloudtrail-logs";

/// A daemon config reading `GROUP` as CloudTrail and publishing to `topic`.
fn config(moto: &Moto, topic: &str, alerts: &str, extra_aws: &str) -> String {
    let rest = format!(
        r#"
[[alerts.sns]]
topic_arn = "{topic}"
min_level = "low"
max_per_minute = 6000

[[sources]]
kind = "cloudwatch_logs"
name = "trail-logs"
log_group = "{GROUP}"
format = "cloudtrail"
interval = "1s"
"#
    );
    daemon_config(&moto.endpoint(), extra_aws, EVERY_TEST_EVENT, alerts, &rest)
}

/// A CloudTrail record of `principal`, padded to about `padding` bytes.
fn record(id: &str, principal: &str, ms: i64, padding: usize) -> String {
    let time = jiff::Timestamp::from_millisecond(ms)
        .unwrap()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    json!({
        "eventVersion": "1.08",
        "userIdentity": {"type": "IAMUser", "arn": format!("arn:aws:iam::123456789012:user/{principal}"), "accountId": "123456789012"},
        "eventTime": time, "eventSource": "test.amazonaws.com", "eventName": "DescribeThings",
        "awsRegion": "eu-west-1", "sourceIPAddress": "203.0.113.10", "eventID": id,
        "eventType": "AwsApiCall", "recipientAccountId": "123456789012",
        "requestParameters": {"padding": "p".repeat(padding)}
    })
    .to_string()
}

/// The AWS side of a test: a topic with a queue subscribed, and a log group.
struct World {
    sns: aws_sdk_sns::Client,
    sqs: aws_sdk_sqs::Client,
    logs: aws_sdk_cloudwatchlogs::Client,
    topic: String,
    inbox: String,
}

impl World {
    async fn new(moto: &Moto) -> World {
        World::with(moto, "").await
    }

    /// With `suffix` `.fifo`: a FIFO topic and a FIFO queue subscribed to it.
    async fn with(moto: &Moto, suffix: &str) -> World {
        let sdk = moto.sdk_config().await;
        let (sns, sqs, logs) = (
            aws_sdk_sns::Client::new(&sdk),
            aws_sdk_sqs::Client::new(&sdk),
            aws_sdk_cloudwatchlogs::Client::new(&sdk),
        );
        let fifo = !suffix.is_empty();
        let mut create = sns.create_topic().name(format!("security-alerts{suffix}"));
        let mut queue = sqs.create_queue().queue_name(format!("inbox{suffix}"));
        if fifo {
            create = create.attributes("FifoTopic", "true");
            queue = queue.attributes(aws_sdk_sqs::types::QueueAttributeName::FifoQueue, "true");
        }
        let topic = create.send().await.unwrap();
        let topic = topic.topic_arn().unwrap().to_owned();
        let inbox = queue.send().await.unwrap();
        let inbox = inbox.queue_url().unwrap().to_owned();
        sns.subscribe()
            .topic_arn(&topic)
            .protocol("sqs")
            .endpoint(format!("arn:aws:sqs:us-east-1:123456789012:inbox{suffix}"))
            .send()
            .await
            .unwrap();
        logs.create_log_group()
            .log_group_name(GROUP)
            .send()
            .await
            .unwrap();
        logs.create_log_stream()
            .log_group_name(GROUP)
            .log_stream_name("s")
            .send()
            .await
            .unwrap();
        World {
            sns,
            sqs,
            logs,
            topic,
            inbox,
        }
    }

    /// Writes records to the log group, a millisecond apart.
    async fn log(&self, records: Vec<String>) {
        let base = jiff::Timestamp::now().as_millisecond() - 60_000;
        let events = records
            .into_iter()
            .enumerate()
            .map(|(i, m)| {
                InputLogEvent::builder()
                    .timestamp(base + i as i64)
                    .message(m)
                    .build()
                    .unwrap()
            })
            .collect();
        self.logs
            .put_log_events()
            .log_group_name(GROUP)
            .log_stream_name("s")
            .set_log_events(Some(events))
            .send()
            .await
            .unwrap();
    }

    /// Every SNS notification in the inbox, removed from it.
    async fn received(&self) -> Vec<Value> {
        let mut out = Vec::new();
        loop {
            let page = self
                .sqs
                .receive_message()
                .queue_url(&self.inbox)
                .max_number_of_messages(10)
                .send()
                .await
                .unwrap();
            let messages = page.messages();
            if messages.is_empty() {
                return out;
            }
            for m in messages {
                out.push(serde_json::from_str(m.body().unwrap()).unwrap());
                self.sqs
                    .delete_message()
                    .queue_url(&self.inbox)
                    .receipt_handle(m.receipt_handle().unwrap())
                    .send()
                    .await
                    .unwrap();
            }
        }
    }
}

/// The alert inside a notification (the topic's `sqs` body).
fn alert(notification: &Value) -> Value {
    serde_json::from_str(notification["Message"].as_str().unwrap()).unwrap()
}

fn attribute<'a>(notification: &'a Value, name: &str) -> &'a str {
    notification["MessageAttributes"][name]["Value"]
        .as_str()
        .unwrap_or_default()
}

#[test]
fn alerts_reach_the_topic_once_readable_filterable_and_trimmed_to_fit() {
    let moto = Moto::start();
    let rt = runtime();
    let world = rt.block_on(World::new(&moto));
    let now = jiff::Timestamp::now().as_millisecond();
    let mut records: Vec<String> = (0..12)
        .map(|i| record(&format!("a-{i:02}"), &format!("user-{i:02}"), now, 0))
        .collect();
    // One event of 200 KB: with its copies for SQS, Lambda and HTTPS the
    // message would be over twice SNS's limit.
    records.push(record("big", "bulk-loader", now, 300_000));
    rt.block_on(world.log(records));
    let daemon = DaemonProcess::start(
        &config(&moto, &world.topic, "dedup_window = \"1h\"", ""),
        &[],
    );
    let admin = daemon.admin_addr();
    assert!(
        wait_delivered(admin, &world.topic, Duration::from_secs(60)),
        "{:?}",
        daemon.logs()
    );
    let received = rt.block_on(world.received());
    assert_eq!(received.len(), 13, "one message per alert");
    let mut ids = BTreeMap::new();
    for n in &received {
        assert_eq!(n["Type"], "Notification");
        assert_eq!(n["TopicArn"], world.topic.as_str());
        let a = alert(n);
        *ids.entry(a["id"].as_str().unwrap().to_owned()).or_insert(0) += 1;
        assert_eq!(
            n["Subject"],
            "[LOW] Any Event From The Test Service (test fixture)"
        );
        assert_eq!(attribute(n, "level"), "low");
        assert_eq!(
            attribute(n, "rule_id"),
            "7c2e9b14-5d3a-4f8e-a6b1-0e9d8c7f6a51"
        );
        assert_eq!(attribute(n, "kind"), "match");
        assert_eq!(attribute(n, "account"), "123456789012");
        assert_eq!(attribute(n, "region"), "eu-west-1");
        assert_eq!(a["event_name"], "DescribeThings");
    }
    assert!(ids.values().all(|&n| n == 1), "no alert twice: {ids:?}");
    let big = received
        .iter()
        .map(alert)
        .find(|a| a["event_id"] == "big")
        .unwrap();
    assert_eq!(
        big["principal"],
        "arn:aws:iam::123456789012:user/bulk-loader"
    );
    assert_eq!(big["trimmed"], json!(["events"]), "{big}");
    let small = received
        .iter()
        .map(alert)
        .find(|a| a["event_id"] == "a-00")
        .unwrap();
    assert!(small.get("trimmed").is_none());
    assert_eq!(
        small["events"][0]["eventID"], "a-00",
        "small alerts carry their event"
    );
    let page = get(admin, "/metrics").1;
    assert_eq!(
        metric(&page, "cloudwarden_alert_delivery_failures_total", ""),
        0.0,
        "{page}"
    );
    // The topic check at start saw the topic.
    assert!(
        daemon
            .wait_for_log("alert topic checked", Duration::from_secs(1))
            .is_some()
    );
    let _ = &world.sns;
}

#[test]
fn repeats_become_a_summary_and_suppressed_alerts_are_counted_not_sent() {
    let moto = Moto::start();
    let rt = runtime();
    let world = rt.block_on(World::new(&moto));
    let now = jiff::Timestamp::now().as_millisecond();
    let mut records = Vec::new();
    for i in 0..6 {
        records.push(record(&format!("alice-{i}"), "alice", now, 0));
    }
    for i in 0..3 {
        records.push(record(&format!("robot-{i}"), "backup-robot", now, 0));
    }
    rt.block_on(world.log(records));
    let alerts = r#"dedup_window = "2s"

[[alerts.suppress]]
reason = "the backup robot reads everything nightly"
principal = "arn:aws:iam::*:user/*-robot"

[[alerts.suppress]]
reason = "an exception that ran out"
principal = "arn:aws:iam::*:user/alice"
expires = "2020-01-01""#;
    let daemon = DaemonProcess::start(&config(&moto, &world.topic, alerts, ""), &[]);
    let admin = daemon.admin_addr();
    let started = Instant::now();
    let mut received = Vec::new();
    while received.len() < 2 && started.elapsed() < Duration::from_secs(60) {
        received.extend(rt.block_on(world.received()));
        std::thread::sleep(Duration::from_millis(300));
    }
    // Anything more would have come with the summary.
    std::thread::sleep(Duration::from_secs(3));
    received.extend(rt.block_on(world.received()));
    assert_eq!(received.len(), 2, "{received:#?}");
    let first = alert(&received[0]);
    assert_eq!(first["event_id"], "alice-0");
    assert_eq!(attribute(&received[0], "kind"), "match");
    let summary = alert(&received[1]);
    assert_eq!(attribute(&received[1], "kind"), "summary");
    assert_eq!(summary["repeats"]["count"], 5, "{summary}");
    assert_eq!(summary["repeats"]["last_event_id"], "alice-5");
    assert!(
        received[1]["Subject"]
            .as_str()
            .unwrap()
            .starts_with("[LOW] 5 repeats: "),
        "{}",
        received[1]["Subject"]
    );
    let page = get(admin, "/metrics").1;
    assert_eq!(
        metric(&page, "cloudwarden_alerts_suppressed_total", ""),
        3.0,
        "{page}"
    );
    assert_eq!(metric(&page, "cloudwarden_alerts_repeats_total", ""), 5.0);
    assert_eq!(metric(&page, "cloudwarden_alert_summaries_total", ""), 1.0);
    assert!(
        daemon
            .wait_for_log("a suppression has expired", Duration::from_secs(1))
            .is_some()
    );
}

#[test]
fn an_sns_outage_and_a_kill_lose_no_alert_and_send_none_twice() {
    let moto = Moto::start();
    let rt = runtime();
    let world = rt.block_on(World::new(&moto));
    let now = jiff::Timestamp::now().as_millisecond();
    let records = (0..40)
        .map(|i| record(&format!("o-{i:02}"), &format!("user-{i:02}"), now, 0))
        .collect();
    rt.block_on(world.log(records));
    // SNS is unreachable from the start.
    let proxy = Proxy::start(moto.addr(), false);
    let endpoints = format!("endpoints = {{ sns = \"{}\" }}", proxy.url());
    let config = config(&moto, &world.topic, "dedup_window = \"1h\"", &endpoints);
    let daemon = DaemonProcess::start(&config, &[]);
    let admin = daemon.admin_addr();
    let started = Instant::now();
    loop {
        let page = get(admin, "/metrics").1;
        let raised = metric(&page, "cloudwarden_alerts_raised_total", "");
        let waiting = metric(&page, "cloudwarden_outbox_alerts", "");
        let failures = metric(&page, "cloudwarden_alert_delivery_failures_total", "");
        if raised == 40.0 && waiting == 40.0 && failures > 0.0 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "{page}");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(rt.block_on(world.received()).is_empty());
    // Killed while the alerts wait; restarted while SNS is still away.
    let dir = daemon.into_dir();
    let daemon = DaemonProcess::start_in(dir, &config, &[]);
    let admin = daemon.admin_addr();
    std::thread::sleep(Duration::from_secs(1));
    proxy.on();
    let started = Instant::now();
    let mut received = Vec::new();
    loop {
        received.extend(rt.block_on(world.received()));
        let page = get(admin, "/metrics").1;
        let delivered = metric(
            &page,
            "cloudwarden_alerts_delivered_total",
            &format!("sink=\"{}\"", world.topic),
        );
        if delivered >= 40.0 && metric(&page, "cloudwarden_outbox_alerts", "") == 0.0 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(90), "{page}");
        std::thread::sleep(Duration::from_millis(300));
    }
    received.extend(rt.block_on(world.received()));
    let mut events: BTreeMap<String, u32> = BTreeMap::new();
    for n in &received {
        *events
            .entry(alert(n)["event_id"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    assert_eq!(events.len(), 40, "every alert delivered");
    assert!(events.values().all(|&n| n == 1), "none twice: {events:?}");
    let page = get(admin, "/metrics").1;
    assert_eq!(
        metric(&page, "cloudwarden_alerts_raised_total", ""),
        0.0,
        "nothing detected again"
    );
}

#[test]
fn a_topic_that_does_not_exist_is_a_configuration_error() {
    let moto = Moto::start();
    let rt = runtime();
    let world = rt.block_on(World::new(&moto));
    let missing = world.topic.replace("security-alerts", "no-such-topic");
    let config = config(&moto, &missing, "", "");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cloudwarden.toml");
    std::fs::write(
        &path,
        config.replace("{dir}", &dir.path().display().to_string()),
    )
    .unwrap();
    let path = path.display().to_string();

    let offline = run(&["validate", "--config", &path], &[]);
    assert!(offline.status.success(), "validate alone does not ask AWS");
    let online = run(&["validate", "--online", "--config", &path], &[]);
    assert_eq!(online.status.code(), Some(78));
    let stderr = String::from_utf8_lossy(&online.stderr);
    assert!(
        stderr.contains("alerts.sns[0].topic_arn") && stderr.contains("does not exist"),
        "{stderr}"
    );

    let good = world.topic.clone();
    let ok = config_file(&dir, &config.replace(&missing, &good));
    let online = run(&["validate", "--online", "--config", &ok], &[]);
    assert!(
        online.status.success(),
        "{}",
        String::from_utf8_lossy(&online.stderr)
    );

    let started = run(&["run", "--config", &path], &[]);
    assert_eq!(started.status.code(), Some(78));
    let stderr = String::from_utf8_lossy(&started.stderr);
    assert!(
        stderr.contains("no-such-topic") && stderr.contains("does not exist"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("panicked") && !stderr.contains("backtrace"),
        "{stderr}"
    );
}

fn config_file(dir: &tempfile::TempDir, config: &str) -> String {
    let path = dir.path().join("good.toml");
    std::fs::write(
        &path,
        config.replace("{dir}", &dir.path().display().to_string()),
    )
    .unwrap();
    path.display().to_string()
}

#[test]
fn a_fifo_topic_gets_every_alert_with_group_and_deduplication_ids() {
    let moto = Moto::start();
    let rt = runtime();
    let world = rt.block_on(World::with(&moto, ".fifo"));
    assert!(world.topic.ends_with(".fifo"));
    let now = jiff::Timestamp::now().as_millisecond();
    // 25 alerts: PublishBatch calls of 10, and a Publish of one at the end or not.
    let records = (0..25)
        .map(|i| record(&format!("f-{i:02}"), &format!("user-{i:02}"), now, 0))
        .collect();
    rt.block_on(world.log(records));
    let config = config(&moto, &world.topic, "dedup_window = \"0s\"", "");
    let daemon = DaemonProcess::start(&config, &[]);
    let admin = daemon.admin_addr();
    let started = Instant::now();
    let mut received = Vec::new();
    loop {
        received.extend(rt.block_on(world.received()));
        let page = get(admin, "/metrics").1;
        let raised = metric(&page, "cloudwarden_alerts_raised_total", "");
        // A FIFO queue hands out a group's next message only after the last
        // one is deleted: read until all are in.
        if raised == 25.0
            && metric(&page, "cloudwarden_outbox_alerts", "") == 0.0
            && received.len() >= 25
        {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "{page}");
        std::thread::sleep(Duration::from_millis(300));
    }
    received.extend(rt.block_on(world.received()));
    let page = get(admin, "/metrics").1;
    assert_eq!(
        metric(&page, "cloudwarden_alerts_undeliverable_total", ""),
        0.0,
        "no alert given up because of the topic's kind: {page}"
    );
    let mut events: BTreeMap<String, u32> = BTreeMap::new();
    for n in &received {
        *events
            .entry(alert(n)["event_id"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    assert_eq!(events.len(), 25, "every alert delivered");
    assert!(events.values().all(|&n| n == 1), "none twice: {events:?}");
}

#[test]
fn a_reload_changes_a_topics_route_in_place() {
    let moto = Moto::start();
    let rt = runtime();
    let world = rt.block_on(World::new(&moto));
    let now = jiff::Timestamp::now().as_millisecond();
    rt.block_on(world.log(vec![record("before-1", "alice", now, 0)]));
    // The test rule's alerts are low: a topic taking high and above gets none.
    let text = config(
        &moto,
        &world.topic,
        "file = \"{dir}/alerts.jsonl\"\ndedup_window = \"0s\"\n",
        "",
    );
    let high = text.replace("min_level = \"low\"", "min_level = \"high\"");
    let daemon = DaemonProcess::start(&high, &[]);
    let admin = daemon.admin_addr();
    let path = daemon.dir().join("alerts.jsonl");
    support::alerts::wait_for(&path, Duration::from_secs(30), |a| !a.is_empty());
    assert!(wait_delivered(admin, "file", Duration::from_secs(30)));
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        rt.block_on(world.received()).is_empty(),
        "below the topic's level"
    );

    let dir = daemon.dir().display().to_string();
    std::fs::write(
        daemon.dir().join("cloudwarden.toml"),
        text.replace("{dir}", &dir),
    )
    .unwrap();
    daemon.signal("HUP");
    daemon
        .wait_for_log("configuration reloaded", Duration::from_secs(10))
        .expect("reloaded");
    rt.block_on(world.log(vec![record("after-1", "bob", now, 0)]));
    let started = Instant::now();
    let mut received = Vec::new();
    while received.is_empty() && started.elapsed() < Duration::from_secs(30) {
        received.extend(rt.block_on(world.received()));
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_eq!(received.len(), 1, "{received:#?}");
    assert_eq!(
        alert(&received[0])["event_id"],
        "after-1",
        "{:#}",
        alert(&received[0])
    );
    assert!(
        daemon
            .wait_for_log("take effect only after a restart", Duration::ZERO)
            .is_none(),
        "a route change needs no restart"
    );
}
