//! The cloudtrail_lookup source, the real binary against a LookupEvents
//! server that speaks CloudTrail's protocol.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::alerts::{by_event, metric, read, wait_for};
use support::cloudtrail_server::CloudTrailServer;
use support::http::get;
use support::process::DaemonProcess;
use support::{EVERY_ALERT_TO_FILE, EVERY_TEST_EVENT, daemon_config};

fn config(endpoint: &str, interval: &str) -> String {
    let aws = format!("\n[aws.endpoints]\ncloudtrail = \"{endpoint}\"");
    let source = format!(
        "[[sources]]\nkind = \"cloudtrail_lookup\"\nname = \"lookup\"\ninterval = \"{interval}\"\nlookback = \"15m\"\nglobal_events = false\n"
    );
    daemon_config(
        endpoint,
        &aws,
        EVERY_TEST_EVENT,
        EVERY_ALERT_TO_FILE,
        &source,
    )
}

fn record(id: &str, seconds_ago: i64) -> Value {
    let time = jiff::Timestamp::now().as_second() - seconds_ago;
    let time = jiff::Timestamp::from_second(time)
        .unwrap()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    json!({
        "eventVersion": "1.08",
        "userIdentity": {"type": "IAMUser", "principalId": "AIDATEST", "arn": "arn:aws:iam::123456789012:user/tester", "accountId": "123456789012"},
        "eventTime": time,
        "eventSource": "test.amazonaws.com",
        "eventName": "DescribeThings",
        "awsRegion": "us-east-1",
        "sourceIPAddress": "203.0.113.10",
        "userAgent": "tests",
        "requestParameters": null,
        "responseElements": null,
        "eventID": id,
        "eventType": "AwsApiCall",
        "recipientAccountId": "123456789012"
    })
}

fn alerts_path(daemon: &DaemonProcess) -> std::path::PathBuf {
    daemon.dir().join("alerts.jsonl")
}

fn all_alerted(alerts: &[Value], n: usize) -> bool {
    by_event(alerts).len() >= n
}

#[test]
fn every_event_is_read_once_across_pages_a_kill_and_a_restart() {
    let server = CloudTrailServer::start();
    for i in 0..1000 {
        server.add("us-east-1", record(&format!("a-{i:04}"), 60 + i % 600));
    }
    let daemon = DaemonProcess::start(&config(&server.endpoint(), "3s"), &[]);
    let path = alerts_path(&daemon);
    let alerts = wait_for(&path, Duration::from_secs(60), |a| all_alerted(a, 1000));
    assert_eq!(
        by_event(&alerts).len(),
        1000,
        "{:?}",
        daemon.logs().iter().rev().take(5).collect::<Vec<_>>()
    );
    // One window of 1000 events is 20 full pages: 20 calls per 1000 events.
    let first_window: Vec<_> = server
        .calls()
        .into_iter()
        .take_while(|c| c.events == 50)
        .collect();
    assert_eq!(first_window.len(), 20);

    // More events arrive; kill -9 while the next window is being read.
    for i in 0..1000 {
        server.add("us-east-1", record(&format!("b-{i:04}"), 30 + i % 500));
    }
    let midway = wait_for(&path, Duration::from_secs(60), |a| {
        by_event(a).keys().filter(|k| k.starts_with("b-")).count() >= 100
    });
    let new = by_event(&midway)
        .keys()
        .filter(|k| k.starts_with("b-"))
        .count();
    assert!(
        (100..1000).contains(&new),
        "killed after {new} of 1000 new events"
    );
    let dir = daemon.into_dir();
    let restarted = std::time::Instant::now();
    let daemon = DaemonProcess::start_in(dir, &config(&server.endpoint(), "3s"), &[]);
    let alerts = wait_for(&path, Duration::from_secs(90), |a| all_alerted(a, 2000));
    eprintln!(
        "recovery after kill -9: cloudtrail_lookup every event alerted {:?} after restart (interval 3 s)",
        restarted.elapsed()
    );
    let events = by_event(&alerts);
    assert_eq!(events.len(), 2000, "every event alerted");
    let twice: Vec<_> = events.iter().filter(|(_, ids)| ids.len() > 1).collect();
    assert!(twice.is_empty(), "events detected twice: {twice:?}");
    // The restart re-read what was committed before the kill, and dropped it.
    let page = get(daemon.admin_addr(), "/metrics").1;
    assert!(
        metric(
            &page,
            "cloudwarden_events_duplicate_total",
            "source=\"lookup\""
        ) > 0.0,
        "{page}"
    );
}

#[test]
fn late_events_inside_the_lookback_are_seen_once_and_malformed_ones_counted() {
    let server = CloudTrailServer::start();
    server.add("us-east-1", record("first", 120));
    let daemon = DaemonProcess::start(&config(&server.endpoint(), "1s"), &[]);
    let path = alerts_path(&daemon);
    assert!(all_alerted(
        &wait_for(&path, Duration::from_secs(30), |a| all_alerted(a, 1)),
        1
    ));
    // CloudTrail delivers an event from 5 minutes ago only now, and a broken one.
    server.add("us-east-1", record("late", 300));
    server.add_raw(
        "us-east-1",
        jiff::Timestamp::now().as_second() - 60,
        "{\"eventVersion\":\"1.08\",",
    );
    let alerts = wait_for(&path, Duration::from_secs(30), |a| all_alerted(a, 2));
    // Several more polls re-read the window; each event still alerts once.
    std::thread::sleep(Duration::from_secs(3));
    let alerts = if alerts.len() < 2 {
        alerts
    } else {
        read(&path)
    };
    let events = by_event(&alerts);
    assert_eq!(
        events.keys().cloned().collect::<Vec<_>>(),
        ["first", "late"]
    );
    assert!(events.values().all(|ids| ids.len() == 1), "{events:?}");
    assert_eq!(alerts.len(), 2, "no redelivery either: {alerts:?}");
    let page = get(daemon.admin_addr(), "/metrics").1;
    assert!(
        metric(
            &page,
            "cloudwarden_events_rejected_total",
            "reason=\"invalid_json\""
        ) >= 1.0,
        "{page}"
    );
}

#[test]
fn throttling_slows_the_source_without_losing_events() {
    let server = CloudTrailServer::start();
    server.throttle_every(3);
    for i in 0..300 {
        server.add("us-east-1", record(&format!("t-{i:03}"), 60 + i));
    }
    let daemon = DaemonProcess::start(&config(&server.endpoint(), "30s"), &[]);
    let path = alerts_path(&daemon);
    let alerts = wait_for(&path, Duration::from_secs(60), |a| all_alerted(a, 300));
    assert_eq!(by_event(&alerts).len(), 300);
    let calls = server.calls();
    assert!(calls.iter().any(|c| c.throttled));
    // Retries included, never three calls within one second. The server
    // stamps a call when it reads it, so scheduling on a busy machine can
    // move two stamps closer by some milliseconds; a limiter that let a
    // third call through would put it right behind the second.
    for window in calls.windows(3) {
        assert!(
            window[2].at.duration_since(window[0].at) >= Duration::from_millis(900),
            "{calls:?}"
        );
    }
    let page = get(daemon.admin_addr(), "/metrics").1;
    assert!(
        metric(
            &page,
            "cloudwarden_aws_errors_total",
            "code=\"ThrottlingException\""
        ) >= 1.0,
        "{page}"
    );
}

#[test]
fn an_unreachable_endpoint_backs_off_readyz_says_why_and_it_recovers() {
    // A port with nothing behind it yet.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let daemon = DaemonProcess::start(&config(&endpoint, "1s"), &[]);
    let admin = daemon.admin_addr();
    let started = std::time::Instant::now();
    let mut reason = String::new();
    while started.elapsed() < Duration::from_secs(30) {
        let (status, body) = get(admin, "/readyz");
        if status == 503 && body.contains("last poll failed") {
            reason = body;
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(reason.contains("source lookup"), "{reason}");
    // A short reason: service, operation, code and class, no AWS message text.
    assert!(
        reason.contains("last poll failed: cloudtrail LookupEvents failing (dispatch, transient)"),
        "{reason}"
    );
    // The endpoint comes up; the source recovers on its own.
    let server = CloudTrailServer::start_on(
        std::net::TcpListener::bind(endpoint.trim_start_matches("http://")).unwrap(),
    );
    server.add("us-east-1", record("after-outage", 30));
    let alerts = wait_for(&alerts_path(&daemon), Duration::from_secs(60), |a| {
        all_alerted(a, 1)
    });
    assert_eq!(by_event(&alerts).len(), 1);
    let ready = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        get(admin, "/readyz").0 == 200
    });
    assert!(ready, "{:?}", get(admin, "/readyz"));
}

#[test]
fn a_window_throttled_part_way_goes_on_from_the_failed_page_and_a_source_over_its_budget_says_so() {
    let server = CloudTrailServer::start();
    // The fifth page's four attempts are all throttled: the poll fails there.
    server.throttle_calls(5..9);
    for i in 0..500 {
        server.add("us-east-1", record(&format!("w-{i:03}"), 60 + i));
    }
    let daemon = DaemonProcess::start(&config(&server.endpoint(), "1s"), &[]);
    let path = alerts_path(&daemon);
    let alerts = wait_for(&path, Duration::from_secs(90), |a| all_alerted(a, 500));
    let events = by_event(&alerts);
    assert_eq!(events.len(), 500);
    assert!(events.values().all(|ids| ids.len() == 1));
    let calls = server.calls();
    assert!(calls[4..8].iter().all(|c| c.throttled), "{calls:?}");
    assert_eq!(
        calls[8].token.as_deref(),
        Some("page-200"),
        "the next poll goes on from the page that failed: {calls:?}"
    );
    // Each whole window is 10 pages (the one that went on, 6), and a 1 s
    // interval allows 2 requests.
    let admin = daemon.admin_addr();
    let started = std::time::Instant::now();
    let (status, body) = loop {
        let (status, body) = get(admin, "/readyz");
        if body.contains("needs 10") || started.elapsed() > Duration::from_secs(60) {
            break (status, body);
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains(
            "falling behind: LookupEvents needs 10 requests a poll in us-east-1, more than the 2 its interval allows"
        ),
        "{body}"
    );
    let page = get(admin, "/metrics").1;
    assert_eq!(
        metric(
            &page,
            "cloudwarden_source_request_budget_percent",
            "region=\"us-east-1\""
        ),
        500.0,
        "{page}"
    );
}
