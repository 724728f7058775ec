//! The daemon as a real process: it serves its admin endpoints, tells the
//! truth about readiness, stops cleanly on signals, and fails clearly.

mod support;

use std::time::Duration;

use cloudwarden::state::StateStore;
use support::http::get;
use support::moto::Moto;
use support::process::DaemonProcess;

/// A configuration for one daemon in `{dir}`, pointed at `endpoint`.
fn config(endpoint: &str, extra: &str) -> String {
    format!(
        r#"[aws]
region = "us-east-1"
endpoint_url = "{endpoint}"

[state]
path = "{{dir}}/state.redb"

[metrics]
listen = "127.0.0.1:0"

[log]
format = "json"

[daemon]
shutdown_grace = "5s"
{extra}"#
    )
}

const GRACE: Duration = Duration::from_secs(5);

#[test]
fn serves_health_readiness_and_metrics_then_stops_on_sigterm() {
    let moto = Moto::start();
    let mut daemon = DaemonProcess::start(&config(&moto.endpoint(), ""), &[]);
    let addr = daemon.admin_addr();

    let (status, body) = get(addr, "/healthz");
    assert_eq!((status, body.as_str()), (200, r#"{"status":"ok"}"#));
    let (status, body) = get(addr, "/readyz");
    assert_eq!((status, body.as_str()), (200, r#"{"status":"ready"}"#));
    // The container health check asks the same endpoints.
    let addr_arg = addr.to_string();
    for args in [
        vec!["healthcheck", "--addr", &addr_arg],
        vec!["healthcheck", "--ready", "--addr", &addr_arg],
    ] {
        let output = support::process::run(&args, &[]);
        assert_eq!(output.status.code(), Some(0), "{args:?}: {output:?}");
    }

    let line = daemon
        .wait_for_log("watching AWS account", Duration::from_secs(30))
        .expect("identity logged");
    assert!(line.contains(support::MOTO_ACCOUNT), "{line}");
    let (status, metrics) = get(addr, "/metrics");
    assert_eq!(status, 200);
    assert!(metrics.contains(&format!(
        "cloudwarden_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    )));
    assert!(metrics.contains("cloudwarden_ready 1"), "{metrics}");
    assert!(
        metrics.contains(
            r#"cloudwarden_aws_calls_total{operation="GetCallerIdentity",service="sts"} 1"#
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains("cloudwarden_state_commits_total{outcome=\"ok\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("\nprocess_resident_memory_bytes ")
            && metrics.contains("\nprocess_start_time_seconds ")
            && !metrics.contains("cloudwarden_start_time_seconds"),
        "{metrics}"
    );

    daemon.signal("TERM");
    let status = daemon
        .wait_exit(GRACE)
        .expect("exited within the grace period");
    assert_eq!(status.code(), Some(0), "stderr: {}", daemon.stderr());
    assert!(
        daemon
            .wait_for_log("pipeline drained and state store closed", Duration::ZERO)
            .is_some()
    );
    // The lock is released: the state file opens again.
    StateStore::open(&daemon.state_path()).expect("state file unlocked after shutdown");
    let output = support::process::run(&["healthcheck", "--addr", &addr_arg], &[]);
    assert_eq!(output.status.code(), Some(1), "nothing answers: {output:?}");
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot reach the admin server"));
}

#[test]
fn sigint_stops_it_cleanly_too() {
    let moto = Moto::start();
    let mut daemon = DaemonProcess::start(&config(&moto.endpoint(), ""), &[]);
    daemon.admin_addr();
    daemon.signal("INT");
    let status = daemon
        .wait_exit(GRACE)
        .expect("exited within the grace period");
    assert_eq!(status.code(), Some(0), "stderr: {}", daemon.stderr());
    let line = daemon
        .wait_for_log("shutting down", Duration::ZERO)
        .unwrap();
    assert!(line.contains("SIGINT"), "{line}");
}

#[test]
fn the_example_configuration_pointed_at_moto_serves_and_names_what_is_not_ready() {
    let moto = Moto::start();
    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/cloudwarden.toml"
    ))
    .unwrap();
    let endpoint = moto.endpoint();
    // The daemon refuses to start without the topic it publishes to.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let sns = aws_sdk_sns::Client::new(&moto.sdk_config().await);
        sns.create_topic()
            .name("cloudwarden-alerts")
            .send()
            .await
            .unwrap();
    });
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.redb").display().to_string();
    let mut daemon = DaemonProcess::start_in(
        dir,
        &example,
        &[
            ("CLOUDWARDEN_AWS__ENDPOINT_URL", endpoint.as_str()),
            ("CLOUDWARDEN_STATE__PATH", state.as_str()),
            ("CLOUDWARDEN_METRICS__LISTEN", "127.0.0.1:0"),
        ],
    );
    let addr = daemon.admin_addr();
    assert_eq!(get(addr, "/healthz").0, 200);
    let (status, body) = get(addr, "/readyz");
    assert_eq!(status, 503, "{body}");
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["status"], "not ready");
    for source in ["source management-events", "source trail-log-group"] {
        assert!(body["waiting"][source].is_string(), "{body}");
    }
    assert!(get(addr, "/metrics").1.contains("cloudwarden_ready 0"));
    daemon.signal("TERM");
    let status = daemon
        .wait_exit(GRACE)
        .expect("exited within the grace period");
    assert_eq!(status.code(), Some(0), "stderr: {}", daemon.stderr());
}

#[test]
fn a_metrics_port_in_use_fails_the_start_with_exit_1() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let text =
        config("http://127.0.0.1:9", "").replace("127.0.0.1:0", &format!("127.0.0.1:{port}"));
    let mut daemon = DaemonProcess::start(&text, &[]);
    let status = daemon.wait_exit(Duration::from_secs(30)).expect("exited");
    assert_eq!(status.code(), Some(1));
    let stderr = daemon.stderr();
    assert!(
        stderr.contains(&format!(
            "cannot serve metrics on 127.0.0.1:{port} (metrics.listen): address already in use"
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn a_state_file_locked_by_another_daemon_fails_the_start_with_exit_1() {
    let moto = Moto::start();
    let first = DaemonProcess::start(&config(&moto.endpoint(), ""), &[]);
    first.admin_addr();
    let state = first.state_path().display().to_string();
    let mut second = DaemonProcess::start(
        &config(&moto.endpoint(), ""),
        &[("CLOUDWARDEN_STATE__PATH", state.as_str())],
    );
    let status = second.wait_exit(Duration::from_secs(30)).expect("exited");
    assert_eq!(status.code(), Some(1));
    let stderr = second.stderr();
    assert!(
        stderr.contains(&format!("state file {state} is locked by another process")),
        "{stderr}"
    );
}

#[test]
fn a_corrupt_state_file_fails_the_start_with_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("state.redb"),
        b"this is not a database, it is a sentence.",
    )
    .unwrap();
    let mut daemon = DaemonProcess::start_in(dir, &config("http://127.0.0.1:9", ""), &[]);
    let status = daemon.wait_exit(Duration::from_secs(30)).expect("exited");
    assert_eq!(status.code(), Some(1));
    let stderr = daemon.stderr();
    assert!(
        stderr.contains("is corrupt or not a state file"),
        "{stderr}"
    );
}

#[test]
fn no_region_anywhere_is_a_configuration_error() {
    let text = config("http://127.0.0.1:9", "").replace("region = \"us-east-1\"\n", "");
    let mut daemon = DaemonProcess::start(&text, &[]);
    let status = daemon.wait_exit(Duration::from_secs(30)).expect("exited");
    assert_eq!(status.code(), Some(78));
    assert!(
        daemon.stderr().contains("no AWS Region"),
        "{}",
        daemon.stderr()
    );
}

#[test]
fn speaks_the_systemd_notify_protocol_with_the_watchdog() {
    use std::os::unix::net::UnixDatagram;
    let moto = Moto::start();
    let socket_dir = tempfile::tempdir().unwrap();
    let socket_path = socket_dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let socket_env = socket_path.display().to_string();
    let mut daemon = DaemonProcess::start(
        &config(&moto.endpoint(), ""),
        // A 200 ms watchdog: the daemon pings every 100 ms.
        &[
            ("NOTIFY_SOCKET", socket_env.as_str()),
            ("WATCHDOG_USEC", "200000"),
        ],
    );
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    while received
        .iter()
        .filter(|m: &&String| m.contains("WATCHDOG=1"))
        .count()
        < 3
    {
        let n = socket
            .recv(&mut buffer)
            .expect("a notification within 10 s");
        received.push(String::from_utf8_lossy(&buffer[..n]).into_owned());
    }
    assert!(received[0].contains("READY=1"), "{received:?}");
    daemon.signal("TERM");
    let stopping = loop {
        let n = socket.recv(&mut buffer).expect("STOPPING=1 within 10 s");
        let message = String::from_utf8_lossy(&buffer[..n]).into_owned();
        if !message.contains("WATCHDOG=1") {
            break message;
        }
    };
    assert!(stopping.contains("STOPPING=1"), "{stopping}");
    assert_eq!(daemon.wait_exit(GRACE).and_then(|s| s.code()), Some(0));
}

#[test]
fn a_detection_commit_that_keeps_failing_ends_the_process_with_exit_1_naming_the_cause() {
    use support::cloudtrail_server::CloudTrailServer;
    let server = CloudTrailServer::start();
    let time = jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    server.add(
        "us-east-1",
        serde_json::json!({
            "eventVersion": "1.08", "eventTime": time, "eventSource": "test.amazonaws.com",
            "eventName": "DescribeThings", "awsRegion": "us-east-1", "eventID": "commit-fails-1",
            "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::123456789012:user/tester"},
            "sourceIPAddress": "203.0.113.10", "recipientAccountId": "123456789012"
        }),
    );
    let sources = "[[sources]]\nkind = \"cloudtrail_lookup\"\nname = \"lookup\"\ninterval = \"1s\"\nglobal_events = false\n";
    let text = support::daemon_config(
        &server.endpoint(),
        "",
        support::EVERY_TEST_EVENT,
        support::EVERY_ALERT_TO_FILE,
        sources,
    );
    // Every state write fails once the daemon has started, as on a full disk.
    let mut daemon = DaemonProcess::start(&text, &[(cloudwarden::daemon::FAIL_STATE_WRITES, "1")]);
    let status = daemon
        .wait_exit(Duration::from_secs(60))
        .expect("the daemon stops on its own when detection cannot commit");
    assert_eq!(
        status.code(),
        Some(1),
        "a supervisor restarts only a failed exit; stderr: {}",
        daemon.stderr()
    );
    let line = daemon
        .wait_for_log("critical task failed", Duration::ZERO)
        .unwrap_or_else(|| panic!("logs: {:#?}", daemon.logs()));
    assert!(
        line.contains("detection") && line.contains("cannot commit to the state store"),
        "{line}"
    );
    let stderr = daemon.stderr();
    assert!(
        stderr.contains("critical task detection failed: detection cannot commit"),
        "{stderr}"
    );
}

/// A rule file raising an alert for CloudTrail events named `name`.
fn rule(id: &str, name: &str) -> String {
    format!(
        "title: {name} happened\nid: {id}\nstatus: experimental\nlogsource:\n    product: aws\n    service: cloudtrail\ndetection:\n    selection:\n        eventName: {name}\n    condition: selection\nlevel: high\n"
    )
}

fn named_event(id: &str, name: &str) -> serde_json::Value {
    let time = jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    serde_json::json!({
        "eventVersion": "1.08", "eventTime": time, "eventSource": "test.amazonaws.com",
        "eventName": name, "awsRegion": "us-east-1", "sourceIPAddress": "203.0.113.10",
        "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::123456789012:user/tester", "accountId": "123456789012"},
        "eventID": id, "eventType": "AwsApiCall", "recipientAccountId": "123456789012"
    })
}

#[test]
fn sighup_reloads_rules_and_suppressions_keeps_state_and_refuses_a_bad_configuration() {
    use support::alerts::{by_event, metric, read, wait_for};
    let server = support::cloudtrail_server::CloudTrailServer::start();
    let rules = tempfile::tempdir().unwrap();
    let first_id = "0d9c1a52-4c0e-4b7a-9a53-1f0b8e1c2a01";
    std::fs::write(rules.path().join("first.yml"), rule(first_id, "First")).unwrap();
    let sources = "[[sources]]\nkind = \"cloudtrail_lookup\"\nname = \"lookup\"\ninterval = \"1s\"\nlookback = \"15m\"\nglobal_events = false\n";
    let config = |rest: &str| {
        support::daemon_config(
            &server.endpoint(),
            &format!("\n[aws.endpoints]\ncloudtrail = \"{}\"", server.endpoint()),
            &rules.path().display().to_string(),
            support::EVERY_ALERT_TO_FILE,
            &format!("{sources}{rest}"),
        )
    };
    server.add("us-east-1", named_event("e1", "First"));
    let mut daemon = DaemonProcess::start(&config(""), &[]);
    let path = daemon.dir().join("alerts.jsonl");
    let config_path = daemon.dir().join("cloudwarden.toml");
    let dir = daemon.dir().display().to_string();
    let write = |text: String| std::fs::write(&config_path, text.replace("{dir}", &dir)).unwrap();
    wait_for(&path, Duration::from_secs(30), |a| {
        by_event(a).contains_key("e1")
    });

    // A second rule, a suppression of the first, and a setting only a restart changes.
    std::fs::write(
        rules.path().join("second.yml"),
        rule("0d9c1a52-4c0e-4b7a-9a53-1f0b8e1c2a02", "Second"),
    )
    .unwrap();
    write(config(&format!(
        "\n[daemon]\nshutdown_grace = \"6s\"\n\n[[alerts.suppress]]\nreason = \"First is expected now\"\nrule = \"{first_id}\"\n"
    )));
    daemon.signal("HUP");
    daemon
        .wait_for_log("configuration reloaded", Duration::from_secs(10))
        .expect("reloaded");
    let restart = daemon
        .wait_for_log("take effect only after a restart", Duration::ZERO)
        .expect("the restart-only change is named");
    assert!(restart.contains("daemon"), "{restart}");
    server.add("us-east-1", named_event("e2", "First"));
    server.add("us-east-1", named_event("e3", "Second"));
    wait_for(&path, Duration::from_secs(30), |a| {
        by_event(a).contains_key("e3")
    });
    daemon
        .wait_for_log(
            "reloaded rules in place; detection state carried over",
            Duration::ZERO,
        )
        .expect("the stage swapped its engine");

    // A configuration with a mistake is refused; the running one stays.
    write(config("\n[detection]\nmax_evnt_bytes = 1\n"));
    daemon.signal("HUP");
    let refused = daemon
        .wait_for_log("configuration not reloaded", Duration::from_secs(10))
        .expect("refused");
    assert!(refused.contains("\"problems\":1"), "{refused}");
    let logs = daemon.logs();
    assert!(
        logs.iter()
            .any(|l| l.contains("configuration problem") && l.contains("detection.max_evnt_bytes")),
        "the problem is logged by key: {:?}",
        logs.iter().rev().take(4).collect::<Vec<_>>()
    );
    server.add("us-east-1", named_event("e4", "Second"));
    server.add("us-east-1", named_event("e5", "First"));
    wait_for(&path, Duration::from_secs(30), |a| {
        by_event(a).contains_key("e4")
    });
    let page = get(daemon.admin_addr(), "/metrics").1;
    assert_eq!(
        metric(
            &page,
            "cloudwarden_config_reloads_total",
            "result=\"success\""
        ),
        1.0,
        "{page}"
    );
    assert_eq!(
        metric(
            &page,
            "cloudwarden_config_reloads_total",
            "result=\"failure\""
        ),
        1.0
    );
    assert!(
        metric(&page, "cloudwarden_alerts_suppressed_total", "") >= 2.0,
        "{page}"
    );

    daemon.signal("TERM");
    let status = daemon.wait_exit(Duration::from_secs(10)).expect("exited");
    assert_eq!(status.code(), Some(0), "{}", daemon.stderr());
    // Every event was read once: e1 before the reload, e3 and e4 by the
    // reloaded rule, e2 and e5 suppressed; none was evaluated twice.
    let events = by_event(&read(&path));
    let mut alerted: Vec<&str> = events.keys().map(String::as_str).collect();
    alerted.sort_unstable();
    assert_eq!(alerted, ["e1", "e3", "e4"]);
    assert!(events.values().all(|ids| ids.len() == 1));
}

#[test]
fn under_journald_each_json_line_carries_its_syslog_priority() {
    use std::os::unix::fs::MetadataExt;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let text = config("http://127.0.0.1:9", "")
        .replace("127.0.0.1:0", &format!("127.0.0.1:{port}"))
        .replace("{dir}", &dir.path().display().to_string());
    let path = dir.path().join("cloudwarden.toml");
    std::fs::write(&path, text).unwrap();
    // The journal's stream, as systemd describes it: stdout's device and inode.
    let journal = dir.path().join("journal");
    let file = std::fs::File::create(&journal).unwrap();
    let meta = file.metadata().unwrap();
    let status = support::process::command(&["run", "--config", &path.display().to_string()])
        .env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()))
        .stdout(file)
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(1));
    let lines = std::fs::read_to_string(&journal).unwrap();
    assert!(
        lines
            .lines()
            .any(|l| l.starts_with("<6>{") && l.contains("\"level\":\"INFO\"")),
        "{lines}"
    );
    assert!(
        lines
            .lines()
            .any(|l| l.starts_with("<3>{") && l.contains("\"level\":\"ERROR\"")),
        "{lines}"
    );
    assert!(lines.lines().all(|l| l.starts_with('<')), "{lines}");
    // Anywhere else the lines are plain JSON.
    let plain = dir.path().join("plain");
    let status = support::process::command(&["run", "--config", &path.display().to_string()])
        .env("JOURNAL_STREAM", "1:2")
        .stdout(std::fs::File::create(&plain).unwrap())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(1));
    let lines = std::fs::read_to_string(&plain).unwrap();
    assert!(lines.lines().all(|l| l.starts_with('{')), "{lines}");
}
