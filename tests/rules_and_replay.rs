//! `rules list`, `rules test`, `validate --strict` and `replay`, as a user runs them.

mod support;

use std::io::Write;
use std::process::Stdio;

use support::process::{command, run};

fn fixtures(name: &str) -> String {
    format!("{}/tests/fixtures/rules/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn out(output: &std::process::Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A configuration without the built-in pack, so that tests see only their fixtures.
fn no_builtin() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(&path, "[rules]\nbuiltin = false\n").unwrap();
    let path = path.display().to_string();
    (dir, path)
}

#[test]
fn rules_test_passes_good_rules_and_fails_wrong_ones() {
    let (_dir, config) = no_builtin();
    let output = run(
        &["rules", "test", "--config", &config, &fixtures("good")],
        &[],
    );
    let (stdout, stderr) = out(&output);
    assert_eq!(output.status.code(), Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains("PASS  1f5d1c3e-7a52-4b7e-9d1f-3c0b2a6e8f01"),
        "{stdout}"
    );
    let output = run(
        &["rules", "test", "--config", &config, &fixtures("failing")],
        &[],
    );
    let (stdout, _) = out(&output);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("FAIL  2a6e0d4f-8b63-4c8f-ae20-4d1c3b7f9a12"),
        "{stdout}"
    );
    assert!(stdout.contains("expected the rule to alert"), "{stdout}");
}

#[test]
fn the_builtin_pack_passes_its_own_tests() {
    let output = run(&["rules", "test", "--config", "/dev/null"], &[]);
    let (stdout, stderr) = out(&output);
    assert_eq!(output.status.code(), Some(0), "{stdout}{stderr}");
    assert!(
        !stdout.contains("FAIL") && !stdout.contains("NOTE"),
        "{stdout}"
    );
}

#[test]
fn rules_list_shows_ids_titles_levels_and_markdown() {
    let output = run(
        &[
            "rules",
            "list",
            "--config",
            "/dev/null",
            "--format",
            "markdown",
        ],
        &[],
    );
    let (stdout, _) = out(&output);
    assert_eq!(output.status.code(), Some(0));
    assert!(stdout.starts_with("# Rules"), "{stdout}");
    assert!(stdout.contains("| id | title | level | ATT&CK technique | kind |"));
    assert!(stdout.contains("## iam ("), "grouped by area: {stdout}");
    assert!(
        stdout.contains("| T1098"),
        "techniques from the attack tags"
    );
    assert!(stdout.contains("## Precision"));
    let (_dir, config) = no_builtin();
    let output = run(
        &["rules", "list", "--config", &config, &fixtures("good")],
        &[],
    );
    let (stdout, _) = out(&output);
    assert!(
        stdout.contains("1f5d1c3e-7a52-4b7e-9d1f-3c0b2a6e8f01")
            && stdout.contains("high")
            && stdout.contains("attack.t1562.008"),
        "{stdout}"
    );
}

#[test]
fn validate_reports_a_broken_rule_and_strict_makes_it_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(
        &path,
        format!(
            "[rules]\nbuiltin = false\npaths = [\"{}\"]\n",
            fixtures("broken")
        ),
    )
    .unwrap();
    let config = path.display().to_string();
    let output = run(&["validate", "--config", &config], &[]);
    let (stdout, stderr) = out(&output);
    assert_eq!(output.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("1 rule failed to load"), "{stdout}");
    assert!(
        stderr.contains("unknown_modifier.yml:8: rule")
            && stderr.contains("rule 3b7f1e5a-9c74-4d90-bf31-5e2d4c8a0b23")
            && stderr.contains("unknown modifier \"sounds_like\""),
        "{stderr}"
    );
    let output = run(&["validate", "--strict", "--config", &config], &[]);
    assert_eq!(output.status.code(), Some(78), "{:?}", out(&output));
}

fn record(id: &str, name: &str) -> String {
    format!(
        r#"{{"eventVersion":"1.08","userIdentity":{{"type":"IAMUser","arn":"arn:aws:iam::111122223333:user/mallory","accountId":"111122223333"}},"eventTime":"2026-11-01T10:00:00Z","eventSource":"cloudtrail.amazonaws.com","eventName":"{name}","awsRegion":"us-east-1","sourceIPAddress":"198.51.100.23","eventID":"{id}","recipientAccountId":"111122223333"}}"#
    )
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

#[test]
fn replay_reads_trail_files_and_ndjson_and_skips_what_it_cannot_read() {
    let dir = tempfile::tempdir().unwrap();
    let trail = dir
        .path()
        .join("111122223333_CloudTrail_us-east-1_20261101T1000Z_x.json.gz");
    let records: Vec<String> = (0..50)
        .map(|i| {
            record(
                &format!("t{i}"),
                if i == 7 {
                    "StopLogging"
                } else {
                    "DescribeTrails"
                },
            )
        })
        .collect();
    std::fs::write(
        &trail,
        gzip(format!("{{\"Records\":[{}]}}", records.join(",")).as_bytes()),
    )
    .unwrap();
    let lines = dir.path().join("events.ndjson");
    let mut text = format!("{}\n{{broken json\n", record("n1", "StopLogging"));
    text.push_str(&format!(
        "{}\n{}\n",
        record("t7", "StopLogging"),
        r#"{"not":"cloudtrail"}"#
    ));
    std::fs::write(&lines, text).unwrap();
    let truncated = dir.path().join("cut.json.gz");
    let many: Vec<String> = (0..3000)
        .map(|i| record(&format!("c{i}"), "DescribeTrails"))
        .collect();
    let compressed = gzip(format!("{{\"Records\":[{}]}}", many.join(",")).as_bytes());
    std::fs::write(&truncated, &compressed[..compressed.len() / 2]).unwrap();
    let (_cfg, config) = no_builtin();
    let paths = [
        trail.display().to_string(),
        lines.display().to_string(),
        truncated.display().to_string(),
    ];
    let output = run(
        &[
            "replay",
            "--config",
            &config,
            "--rules",
            &fixtures("good"),
            &paths[0],
            &paths[1],
            &paths[2],
        ],
        &[],
    );
    let (stdout, stderr) = out(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let alerts: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON alert per line"))
        .collect();
    // t7 in the trail file and n1 in the NDJSON; t7 again is a duplicate.
    let ids: Vec<&str> = alerts
        .iter()
        .map(|a| a["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["t7", "n1"], "{stdout}");
    assert!(
        alerts[0]["origin"]
            .as_str()
            .unwrap()
            .ends_with(".json.gz:record 7"),
        "{}",
        alerts[0]["origin"]
    );
    assert!(
        stderr.contains("events.ndjson:line 2: rejected") && stderr.contains("invalid_json"),
        "{stderr}"
    );
    assert!(
        stderr.contains("events.ndjson:line 4: rejected") && stderr.contains("not_cloudtrail"),
        "{stderr}"
    );
    assert!(
        stderr.contains("cut.json.gz:record") && stderr.contains("unreadable"),
        "{stderr}"
    );
    assert!(stderr.contains("duplicates dropped: 1"), "{stderr}");
    assert!(stderr.contains("alerts: 2 (critical 0, high 2"), "{stderr}");
}

#[test]
fn replay_reads_standard_input() {
    let (_cfg, config) = no_builtin();
    let mut child = command(&[
        "replay",
        "--config",
        &config,
        "--rules",
        &fixtures("good"),
        "-",
    ])
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    writeln!(
        stdin,
        "[{},{}]",
        record("s1", "StopLogging"),
        record("s2", "ListTrails")
    )
    .unwrap();
    drop(stdin);
    let output = child.wait_with_output().unwrap();
    let (stdout, stderr) = out(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(stderr.contains("2 records, 2 events evaluated"), "{stderr}");
}

#[test]
fn docs_rules_md_is_the_current_rule_list() {
    let output = run(
        &[
            "rules",
            "list",
            "--config",
            "/dev/null",
            "--format",
            "markdown",
        ],
        &[],
    );
    let generated = String::from_utf8_lossy(&output.stdout);
    let committed =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/rules.md")).unwrap();
    assert!(
        generated == committed,
        "docs/rules.md is stale: regenerate it with `cloudwarden rules list --config /dev/null --format markdown > docs/rules.md`"
    );
}

#[test]
fn replay_puts_files_of_different_regions_in_event_time_order() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    std::fs::write(
        rules.join("denied.yml"),
        "title: Denied\nid: denied\nname: denied\nlogsource: {product: aws, service: cloudtrail}\ndetection:\n  selection:\n    errorCode: AccessDenied\n  condition: selection\n---\ntitle: Denied burst\nid: burst\ncorrelation:\n  type: event_count\n  rules: [denied]\n  group-by: [recipientAccountId]\n  timespan: 5m\n  condition: {gte: 3}\nlevel: high\n",
    )
    .unwrap();
    let event = |id: &str, region: &str, time: &str, denied: bool| {
        format!(
            r#"{{"eventTime":"{time}","eventSource":"iam.amazonaws.com","eventName":"GetUser","awsRegion":"{region}","eventID":"{id}","recipientAccountId":"111122223333"{}}}"#,
            if denied {
                r#","errorCode":"AccessDenied""#
            } else {
                ""
            }
        )
    };
    // Named as S3 names trail files: the eu-west-1 file (an hour later)
    // sorts before the us-east-1 one that holds the burst.
    let later = dir
        .path()
        .join("111122223333_CloudTrail_eu-west-1_20261101T1100Z_a.json");
    let burst = dir
        .path()
        .join("111122223333_CloudTrail_us-east-1_20261101T1000Z_b.json");
    let records = |events: Vec<String>| format!(r#"{{"Records":[{}]}}"#, events.join(","));
    std::fs::write(
        &later,
        records(vec![
            event("l1", "eu-west-1", "2026-11-01T11:00:00Z", false),
            event("l2", "eu-west-1", "2026-11-01T11:05:00Z", false),
        ]),
    )
    .unwrap();
    std::fs::write(
        &burst,
        records(vec![
            event("b1", "us-east-1", "2026-11-01T10:00:00Z", true),
            event("b2", "us-east-1", "2026-11-01T10:01:00Z", true),
            event("b3", "us-east-1", "2026-11-01T10:02:00Z", true),
        ]),
    )
    .unwrap();
    let (_config_dir, config) = no_builtin();
    let rules = rules.display().to_string();
    let replay = |files: [&std::path::Path; 2], extra: &[&str]| {
        let mut args = vec!["replay", "--config", &config, "--rules", &rules];
        args.extend_from_slice(extra);
        let files: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
        args.extend(files.iter().map(String::as_str));
        let output = run(&args, &[]);
        let (stdout, stderr) = out(&output);
        assert_eq!(output.status.code(), Some(0), "{stderr}");
        let bursts = stdout
            .lines()
            .filter(|l| l.contains(r#""id":"burst""#))
            .count();
        (bursts, stderr)
    };
    let (in_name_order, stderr) = replay([&later, &burst], &[]);
    assert_eq!(in_name_order, 1, "{stderr}");
    assert!(stderr.contains("0 late events"), "{stderr}");
    let (in_time_order, _) = replay([&burst, &later], &[]);
    assert_eq!(in_time_order, 1);
    // Without the reorder buffer the burst arrives an hour late and is lost:
    // what the buffer is for.
    let (unordered, stderr) = replay([&later, &burst], &["--reorder-buffer", "0"]);
    assert_eq!(unordered, 0, "{stderr}");
    assert!(stderr.contains("3 late events"), "{stderr}");
}

#[test]
fn validate_and_rules_list_name_rules_that_no_configured_source_feeds() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    std::fs::write(
        rules.join("windows.yml"),
        "title: Windows logon\nid: win-logon\nlogsource: {product: windows, service: security}\ndetection:\n  selection:\n    EventID: 4624\n  condition: selection\n",
    )
    .unwrap();
    std::fs::write(
        rules.join("iam.yml"),
        "title: Key made\nid: key-made\nlogsource: {product: aws, service: iam}\ndetection:\n  selection:\n    eventName: CreateAccessKey\n  condition: selection\n",
    )
    .unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(
        &path,
        format!(
            "[rules]\nbuiltin = false\npaths = [\"{}\"]\n\n[[sources]]\nkind = \"s3_sqs\"\nname = \"trail\"\nqueue_url = \"https://sqs.us-east-1.amazonaws.com/111122223333/trail\"\n",
            rules.display()
        ),
    )
    .unwrap();
    let config = path.display().to_string();
    let output = run(&["validate", "--config", &config], &[]);
    let (stdout, stderr) = out(&output);
    assert_eq!(output.status.code(), Some(0), "{stdout}{stderr}");
    assert!(
        stderr.contains("warning: rule win-logon")
            && stderr.contains("no configured source reads events of its logsource"),
        "{stderr}"
    );
    // A rule about IAM's CloudTrail events is fed by the trail.
    assert!(!stderr.contains("rule key-made"), "{stderr}");
    let output = run(
        &["rules", "list", "--config", &config, "--format", "json"],
        &[],
    );
    let (stdout, _) = out(&output);
    let fed: std::collections::HashMap<String, bool> = stdout
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["id"].as_str().unwrap().to_owned(),
                v["fed"].as_bool().unwrap(),
            )
        })
        .collect();
    assert!(!fed["win-logon"]);
    assert!(fed["key-made"]);
}

#[test]
fn replay_fails_when_an_input_cannot_be_read_or_a_rule_does_not_load() {
    let (_dir, config) = no_builtin();
    let output = run(
        &["replay", "--config", &config, "/nonexistent/trail.json"],
        &[],
    );
    let (_, stderr) = out(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("1 file(s) not opened"), "{stderr}");
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("e.json");
    std::fs::write(&events, "[]").unwrap();
    let output = run(
        &[
            "replay",
            "--config",
            &config,
            "--rules",
            &fixtures("broken"),
            &events.display().to_string(),
        ],
        &[],
    );
    let (_, stderr) = out(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("rule(s) not loaded"), "{stderr}");
}
