//! The noise budget of the built-in rule pack: replayed over a corpus of
//! ordinary work (`tests/fixtures/benign`, written by its `generate.py`:
//! administrators in the console, a deployment pipeline, AWS services and
//! applications), the pack raises no alert at medium or above and at most
//! one low alert per 1,000 events. Run with `--no-capture` to see the
//! measured numbers.

mod support;

use std::collections::BTreeMap;

use support::process::run;

/// The configuration of an account that lists its deployment pipeline, as a
/// user writes it: the role's sessions, whatever the session name.
const PIPELINE_LISTED: &str = r#"[rules.placeholders]
automation_principals = ["arn:aws:sts::111122223333:assumed-role/github-actions-deploy/*"]
"#;

/// Lambda Function Code Replaced Outside the Deployment Pipeline.
const LAMBDA_CODE_REPLACED: &str = "4c233256-0e4a-43a4-8108-b607baf084d4";

/// The smallest corpus for which the per-1,000 budget says something.
const MIN_EVENTS: u64 = 2_000;

/// The corpus files, in name order.
fn corpus() -> Vec<String> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/benign");
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|err| panic!("cannot read {dir}: {err}"))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name.ends_with(".json") || name.ends_with(".json.gz")
        })
        .map(|path| path.display().to_string())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no trail files in {dir}");
    files
}

/// What one replay of the corpus produced.
struct Replay {
    events: u64,
    alerts: Vec<serde_json::Value>,
    summary: String,
}

/// Replays the corpus with the built-in pack under `config_text`.
fn replay(config_text: &str) -> Replay {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("cloudwarden.toml");
    std::fs::write(&path, config_text).expect("write config");
    let config = path.display().to_string();
    let files = corpus();
    let mut args: Vec<&str> = vec!["replay", "--config", config.as_str()];
    args.extend(files.iter().map(String::as_str));
    let output = run(&args, &[]);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let summary = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(0), "replay failed:\n{summary}");
    assert!(
        summary.contains("rejected: 0"),
        "replay rejected records of the corpus:\n{summary}"
    );
    let alerts: Vec<serde_json::Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).expect("one JSON alert per line"))
        .collect();
    Replay {
        events: events_evaluated(&summary),
        alerts,
        summary,
    }
}

/// N in the summary's "..., N events evaluated, ...".
fn events_evaluated(summary: &str) -> u64 {
    let Some((head, _)) = summary.split_once(" events evaluated") else {
        panic!("no event count in the replay summary:\n{summary}");
    };
    head.rsplit(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|digits| digits.parse().ok())
        .unwrap_or_else(|| panic!("no event count in the replay summary:\n{summary}"))
}

fn level(alert: &serde_json::Value) -> &str {
    alert["rule"]["level"].as_str().unwrap_or("unknown")
}

fn by_level(alerts: &[serde_json::Value]) -> BTreeMap<String, u64> {
    let mut levels = BTreeMap::new();
    for alert in alerts {
        *levels.entry(level(alert).to_owned()).or_insert(0) += 1;
    }
    levels
}

/// One line per alert: level, rule, principal and the event it fired on.
fn describe(alert: &serde_json::Value) -> String {
    format!(
        "{:<8} {} ({}; {} {} at {})",
        level(alert),
        alert["rule"]["title"].as_str().unwrap_or("?"),
        alert["rule"]["id"].as_str().unwrap_or("?"),
        alert["principal"].as_str().unwrap_or("?"),
        alert["event_name"].as_str().unwrap_or("?"),
        alert["origin"].as_str().unwrap_or("?"),
    )
}

#[test]
fn the_builtin_pack_stays_within_its_noise_budget_on_ordinary_work() {
    let replayed = replay(PIPELINE_LISTED);
    let levels = by_level(&replayed.alerts);
    let low = levels.get("low").copied().unwrap_or(0);
    println!(
        "benign corpus: {} events, {} alerts, by level {levels:?}; low per 1,000 events: {:.2}",
        replayed.events,
        replayed.alerts.len(),
        low as f64 * 1_000.0 / replayed.events.max(1) as f64
    );
    let lines: Vec<String> = replayed.alerts.iter().map(describe).collect();
    for line in &lines {
        println!("  {line}");
    }
    assert!(
        replayed.events >= MIN_EVENTS,
        "the corpus has {} events, fewer than the {MIN_EVENTS} the budget is measured on (run tests/fixtures/benign/generate.py):\n{}",
        replayed.events,
        replayed.summary
    );
    let loud: Vec<String> = replayed
        .alerts
        .iter()
        .filter(|alert| !matches!(level(alert), "low" | "informational"))
        .map(describe)
        .collect();
    assert!(
        loud.is_empty(),
        "{} alert(s) at medium or above on ordinary work; tighten the rule or, if the event is not ordinary, fix the corpus:\n{}",
        loud.len(),
        loud.join("\n")
    );
    assert!(
        low * 1_000 <= replayed.events,
        "{low} low alerts on {} events, more than 1 per 1,000:\n{}",
        replayed.events,
        lines.join("\n")
    );
}

#[test]
fn the_pipeline_is_quiet_because_it_is_listed_in_automation_principals() {
    // With nothing listed, the same corpus must be caught by the rules the
    // placeholder quiets: otherwise the budget above would prove nothing
    // about them.
    let replayed = replay("[rules]\nbuiltin = true\n");
    let levels = by_level(&replayed.alerts);
    let deployments = replayed
        .alerts
        .iter()
        .filter(|alert| alert["rule"]["id"].as_str() == Some(LAMBDA_CODE_REPLACED))
        .count();
    println!(
        "benign corpus without automation_principals: {} events, {} alerts, by level {levels:?}; {deployments} pipeline deployment(s) flagged",
        replayed.events,
        replayed.alerts.len()
    );
    assert!(
        deployments > 0,
        "the pipeline's Lambda deployments no longer alert when its role is not listed: the corpus has lost them, or the rule has changed:\n{}",
        replayed.summary
    );
}
