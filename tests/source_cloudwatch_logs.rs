//! The cloudwatch_logs source, the real binary against moto's CloudWatch Logs.

mod support;

use std::time::Duration;

use aws_sdk_cloudwatchlogs::types::InputLogEvent;
use serde_json::json;
use support::alerts::{by_event, metric, read, wait_for};
use support::http::get;
use support::moto::Moto;
use support::process::DaemonProcess;
use support::{EVERY_ALERT_TO_FILE, EVERY_TEST_EVENT, daemon_config, runtime};

const APP_ERRORS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/rules/app_logs");

fn config(moto: &Moto, rules: &str, source: &str) -> String {
    daemon_config(&moto.endpoint(), "", rules, EVERY_ALERT_TO_FILE, source)
}

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

fn record(id: &str, ms: i64) -> String {
    let time = jiff::Timestamp::from_millisecond(ms)
        .unwrap()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    json!({
        "eventVersion": "1.08",
        "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::123456789012:user/tester", "accountId": "123456789012"},
        "eventTime": time, "eventSource": "test.amazonaws.com", "eventName": "DescribeThings",
        "awsRegion": "us-east-1", "sourceIPAddress": "203.0.113.10", "eventID": id,
        "eventType": "AwsApiCall", "recipientAccountId": "123456789012"
    })
    .to_string()
}

async fn put(
    client: &aws_sdk_cloudwatchlogs::Client,
    group: &str,
    stream: &str,
    messages: Vec<(i64, String)>,
) {
    let events = messages
        .into_iter()
        .map(|(ts, m)| {
            InputLogEvent::builder()
                .timestamp(ts)
                .message(m)
                .build()
                .unwrap()
        })
        .collect();
    client
        .put_log_events()
        .log_group_name(group)
        .log_stream_name(stream)
        .set_log_events(Some(events))
        .send()
        .await
        .unwrap();
}

/// A log group with one stream.
async fn create(client: &aws_sdk_cloudwatchlogs::Client, group: &str, stream: &str) {
    client
        .create_log_group()
        .log_group_name(group)
        .send()
        .await
        .unwrap();
    client
        .create_log_stream()
        .log_group_name(group)
        .log_stream_name(stream)
        .send()
        .await
        .unwrap();
}

#[test]
fn reads_cloudtrail_from_a_log_group_counts_bad_lines_and_resumes_after_a_restart() {
    let moto = Moto::start();
    let rt = runtime();
    let logs = aws_sdk_cloudwatchlogs::Client::new(&rt.block_on(moto.sdk_config()));
    let (group, stream) = ("aws-cloudtrail-logs", "123456789012_CloudTrail_us-east-1");
    rt.block_on(async {
        create(&logs, group, stream).await;
        let base = now_ms() - 60_000;
        let mut messages: Vec<(i64, String)> = (0..120)
            .map(|i| (base + i * 100, record(&format!("l-{i:03}"), base + i * 100)))
            .collect();
        messages.push((base + 20_000, "this line is not JSON".to_owned()));
        put(&logs, group, stream, messages).await;
    });
    let source = format!(
        "[[sources]]\nkind = \"cloudwatch_logs\"\nname = \"trail-logs\"\nlog_group = \"{group}\"\nformat = \"cloudtrail\"\ninterval = \"1s\"\nlookback = \"5m\"\n"
    );
    let mut daemon = DaemonProcess::start(&config(&moto, EVERY_TEST_EVENT, &source), &[]);
    let path = daemon.dir().join("alerts.jsonl");
    let alerts = wait_for(&path, Duration::from_secs(60), |a| by_event(a).len() >= 120);
    assert_eq!(by_event(&alerts).len(), 120);
    let page = get(daemon.admin_addr(), "/metrics").1;
    assert_eq!(
        metric(
            &page,
            "cloudwarden_events_rejected_total",
            "reason=\"invalid_json\""
        ),
        1.0,
        "{page}"
    );
    assert!(
        metric(&page, "cloudwarden_source_ready", "source=\"trail-logs\"") == 1.0,
        "{page}"
    );

    // A clean restart, then more events: only they are new.
    daemon.signal("TERM");
    assert!(
        daemon
            .wait_exit(Duration::from_secs(15))
            .is_some_and(|s| s.success())
    );
    let dir = daemon.into_dir();
    rt.block_on(async {
        let base = now_ms() - 5_000;
        put(
            &logs,
            group,
            stream,
            (0..30)
                .map(|i| (base + i * 10, record(&format!("m-{i:03}"), base + i * 10)))
                .collect(),
        )
        .await;
    });
    let restarted = std::time::Instant::now();
    let daemon = DaemonProcess::start_in(dir, &config(&moto, EVERY_TEST_EVENT, &source), &[]);
    let alerts = wait_for(&path, Duration::from_secs(60), |a| by_event(a).len() >= 150);
    eprintln!(
        "recovery after a restart: cloudwatch_logs the events written while down alerted {:?} after the start",
        restarted.elapsed()
    );
    std::thread::sleep(Duration::from_secs(2));
    let alerts = if alerts.len() >= 150 {
        read(&path)
    } else {
        alerts
    };
    let events = by_event(&alerts);
    assert_eq!(events.len(), 150);
    assert_eq!(
        alerts.len(),
        150,
        "each event alerted once, none redelivered"
    );
    let page = get(daemon.admin_addr(), "/metrics").1;
    assert!(
        metric(
            &page,
            "cloudwarden_events_duplicate_total",
            "source=\"trail-logs\""
        ) >= 120.0,
        "the lookback re-read the old events and dropped them: {page}"
    );
}

#[test]
fn reads_json_application_logs_from_every_group_under_a_prefix() {
    let moto = Moto::start();
    let rt = runtime();
    let logs = aws_sdk_cloudwatchlogs::Client::new(&rt.block_on(moto.sdk_config()));
    rt.block_on(async {
        for group in ["/app/web", "/app/worker", "/other/db"] {
            logs.create_log_group()
                .log_group_name(group)
                .send()
                .await
                .unwrap();
            logs.create_log_stream()
                .log_group_name(group)
                .log_stream_name("i-1")
                .send()
                .await
                .unwrap();
            let ts = now_ms() - 1_000;
            put(
                &logs,
                group,
                "i-1",
                vec![
                    (
                        ts,
                        json!({"level": "error", "msg": format!("{group} failed")}).to_string(),
                    ),
                    (ts + 1, json!({"level": "info", "msg": "fine"}).to_string()),
                ],
            )
            .await;
        }
    });
    let source = "[[sources]]\nkind = \"cloudwatch_logs\"\nname = \"apps\"\nlog_group_prefix = \"/app/\"\nformat = \"json\"\nlogsource = { product = \"myapp\" }\ninterval = \"1s\"\n";
    let daemon = DaemonProcess::start(&config(&moto, APP_ERRORS, source), &[]);
    let path = daemon.dir().join("alerts.jsonl");
    let alerts = wait_for(&path, Duration::from_secs(60), |a| a.len() >= 2);
    std::thread::sleep(Duration::from_secs(2));
    let alerts = if alerts.len() >= 2 {
        read(&path)
    } else {
        alerts
    };
    let messages: Vec<String> = alerts
        .iter()
        .map(|a| {
            a["events"][0]["msg"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    assert_eq!(alerts.len(), 2, "{messages:?}");
    assert!(
        messages.contains(&"/app/web failed".to_owned())
            && messages.contains(&"/app/worker failed".to_owned())
    );
    assert!(
        alerts
            .iter()
            .all(|a| a["origin"].as_str().unwrap().starts_with("/app/"))
    );
    let _ = daemon;
}

#[test]
fn a_record_dated_in_the_future_does_not_blind_correlations_across_a_restart() {
    let moto = Moto::start();
    let rt = runtime();
    let logs = aws_sdk_cloudwatchlogs::Client::new(&rt.block_on(moto.sdk_config()));
    let (group, stream) = ("aws-cloudtrail-logs", "123456789012_CloudTrail_us-east-1");
    let rules = tempfile::tempdir().unwrap();
    std::fs::write(
        rules.path().join("denied.yml"),
        "title: Denied\nid: denied\nname: denied\nlogsource: {product: aws, service: cloudtrail}\ndetection:\n  selection:\n    errorCode: AccessDenied\n  condition: selection\n---\ntitle: Denied burst\nid: burst\ncorrelation:\n  type: event_count\n  rules: [denied]\n  group-by: [recipientAccountId]\n  timespan: 5m\n  condition: {gte: 12}\nlevel: high\n",
    )
    .unwrap();
    let denied = |id: &str, ms: i64| {
        let mut record: serde_json::Value = serde_json::from_str(&record(id, ms)).unwrap();
        record["errorCode"] = json!("AccessDenied");
        record.to_string()
    };
    rt.block_on(async {
        create(&logs, group, stream).await;
        // Ingested now, but stamped 2099.
        let future = jiff::Timestamp::from_second(4_070_908_800)
            .unwrap()
            .as_millisecond();
        put(
            &logs,
            group,
            stream,
            vec![(now_ms(), record("future", future))],
        )
        .await;
    });
    let source = format!(
        "[[sources]]\nkind = \"cloudwatch_logs\"\nname = \"trail-logs\"\nlog_group = \"{group}\"\nformat = \"cloudtrail\"\ninterval = \"1s\"\nlookback = \"5m\"\n"
    );
    let rules_path = rules.path().display().to_string();
    let mut daemon = DaemonProcess::start(&config(&moto, &rules_path, &source), &[]);
    let mut counted = false;
    for _ in 0..60 {
        let page = get(daemon.admin_addr(), "/metrics").1;
        if metric(&page, "cloudwarden_events_future_total", "") >= 1.0 {
            counted = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(counted, "the future-dated record was counted");
    // Nor does it make the source look fresh: the newest event time shown
    // is never past the clock; and progress was committed for the group.
    let page = get(daemon.admin_addr(), "/metrics").1;
    let newest = metric(
        &page,
        "cloudwarden_source_newest_event_timestamp_seconds",
        "source=\"trail-logs\"",
    );
    let now = jiff::Timestamp::now().as_second() as f64;
    assert!(
        newest > now - 60.0 && newest <= now + 1.0,
        "{newest} vs {now}"
    );
    assert!(
        metric(
            &page,
            "cloudwarden_source_checkpoint_timestamp_seconds",
            "source=\"trail-logs\""
        ) > now - 60.0,
        "{page}"
    );
    daemon.signal("TERM");
    assert!(
        daemon
            .wait_exit(Duration::from_secs(15))
            .is_some_and(|s| s.success())
    );
    // After the restart (the newest event time comes back from the state
    // store), 12 refused calls within a minute are a burst.
    let dir = daemon.into_dir();
    let path = dir.path().join("alerts.jsonl");
    rt.block_on(async {
        let base = now_ms() - 60_000;
        put(
            &logs,
            group,
            stream,
            (0..12)
                .map(|i| {
                    (
                        base + i * 1000,
                        denied(&format!("d-{i:02}"), base + i * 1000),
                    )
                })
                .collect(),
        )
        .await;
    });
    let daemon = DaemonProcess::start_in(dir, &config(&moto, &rules_path, &source), &[]);
    let alerts = wait_for(&path, Duration::from_secs(60), |a| {
        a.iter().any(|alert| alert["rule"]["id"] == "burst")
    });
    assert!(
        alerts.iter().any(|alert| alert["rule"]["id"] == "burst"),
        "{:?}",
        daemon.logs().iter().rev().take(5).collect::<Vec<_>>()
    );
    let page = get(daemon.admin_addr(), "/metrics").1;
    assert_eq!(
        metric(&page, "cloudwarden_correlation_late_events_total", ""),
        0.0,
        "{page}"
    );
}

#[test]
fn events_ingested_later_than_the_lookback_are_still_read() {
    let moto = Moto::start();
    let rt = runtime();
    let logs = aws_sdk_cloudwatchlogs::Client::new(&rt.block_on(moto.sdk_config()));
    let (group, stream) = ("aws-cloudtrail-logs", "123456789012_CloudTrail_us-east-1");
    rt.block_on(async {
        create(&logs, group, stream).await;
        // Ingested now, 4.5 minutes after they happened: within the lookback.
        let then = now_ms() - 270_000;
        put(
            &logs,
            group,
            stream,
            (0..5)
                .map(|i| (then + i, record(&format!("slow-{i}"), then + i)))
                .collect(),
        )
        .await;
    });
    let source = format!(
        "[[sources]]\nkind = \"cloudwatch_logs\"\nname = \"trail-logs\"\nlog_group = \"{group}\"\nformat = \"cloudtrail\"\ninterval = \"1s\"\nlookback = \"5m\"\n"
    );
    let daemon = DaemonProcess::start(&config(&moto, EVERY_TEST_EVENT, &source), &[]);
    let path = daemon.dir().join("alerts.jsonl");
    wait_for(&path, Duration::from_secs(60), |a| by_event(a).len() >= 5);
    let mut measured = 0.0;
    for _ in 0..20 {
        let page = get(daemon.admin_addr(), "/metrics").1;
        measured = metric(
            &page,
            "cloudwarden_source_event_lateness_seconds",
            "source=\"trail-logs\"",
        );
        if measured >= 260.0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!((260.0..=300.0).contains(&measured), "{measured}");
    // Now one ingested 5 minutes 20 seconds late: past the configured
    // lookback, within what the source learned to reach back.
    rt.block_on(async {
        let then = now_ms() - 320_000;
        put(&logs, group, stream, vec![(then, record("slower", then))]).await;
    });
    let alerts = wait_for(&path, Duration::from_secs(30), |a| {
        by_event(a).contains_key("slower")
    });
    assert!(by_event(&alerts).contains_key("slower"));
    let page = get(daemon.admin_addr(), "/metrics").1;
    assert!(
        metric(
            &page,
            "cloudwarden_source_reread_seconds",
            "source=\"trail-logs\""
        ) > 300.0,
        "{page}"
    );
}
