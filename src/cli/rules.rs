//! `cloudwarden rules list` and `cloudwarden rules test`.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use crate::config::Config;
use crate::detection::ruletest::{self, TestFile, TestFileError};
use crate::detection::sigma::ruleset::{RuleInfo, RuleSet};
use crate::rules;

/// How `rules list` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ListFormat {
    /// Aligned columns for a terminal.
    Table,
    /// A Markdown document (docs/rules.md).
    Markdown,
    /// One JSON object per rule.
    Json,
}

/// Loads the rules `config` asks for plus `extra`, printing what failed to load.
pub fn load(config: &Config, extra: &[PathBuf], builtin: bool) -> (Arc<RuleSet>, usize) {
    let mut rules_config = config.rules.clone();
    rules_config.builtin &= builtin;
    let (set, problems) = rules::load(&rules_config, config.detection.max_group_entries, extra);
    for problem in &problems {
        eprintln!(
            "cloudwarden: {}: {}",
            problem.path.display(),
            problem.message
        );
    }
    for error in &set.errors {
        eprintln!("cloudwarden: {error}");
    }
    for warning in &set.warnings {
        eprintln!("cloudwarden: warning: {warning}");
    }
    let failures = problems.len() + set.errors.len();
    (Arc::new(set), failures)
}

/// `rules list`.
pub fn list(config: &Config, paths: &[PathBuf], builtin: bool, format: ListFormat) -> ExitCode {
    let (set, failures) = load(config, paths, builtin);
    let infos = set.infos();
    // Whether a configured source reads the events of each rule's logsource
    // (with no source configured, nothing is known and every rule counts as fed).
    let sources: Vec<_> = config.sources.iter().map(|s| s.kind.logsource()).collect();
    let fed = |i: &RuleInfo| sources.is_empty() || sources.iter().any(|s| i.logsource.admits(s));
    let text = match format {
        ListFormat::Table => table(&infos, &fed),
        ListFormat::Markdown => markdown(&infos),
        ListFormat::Json => infos
            .iter()
            .map(|i| {
                serde_json::json!({
                    "id": i.id, "title": i.title, "level": i.level.as_str(), "tags": i.tags,
                    "kind": i.kind, "alerts": i.alerts, "origin": i.origin, "description": i.description,
                    "logsource": i.logsource.to_string(), "fed": fed(i), "skipped": i.skipped,
                })
                .to_string()
                    + "\n"
            })
            .collect(),
    };
    print!("{text}");
    if failures > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn table(infos: &[RuleInfo], fed: &dyn Fn(&RuleInfo) -> bool) -> String {
    let mut out = String::new();
    for i in infos {
        let mut kind = match &i.skipped {
            Some(why) => format!("{} (not evaluated: {why})", i.kind),
            None if i.alerts => i.kind.clone(),
            None => format!("{} (building block)", i.kind),
        };
        if !fed(i) {
            kind.push_str(" (no source reads it)");
        }
        let _ = writeln!(
            out,
            "{:<38} {:<13} {:<30} {}",
            i.id,
            i.level.as_str(),
            kind,
            i.title
        );
        if !i.tags.is_empty() {
            let _ = writeln!(out, "{:<38} tags: {}", "", i.tags.join(", "));
        }
    }
    let _ = writeln!(out, "{} rules", infos.len());
    out
}

/// How the pack's precision is held, for the Markdown document.
const PRECISION: &str = "## Precision\n\nThe built-in pack is held to a noise budget: `tests/rule_noise.rs` replays a corpus of 3,702 events of ordinary work (`tests/fixtures/benign/`: administrators in the console, a deployment pipeline, AWS services acting on their own, applications) and allows no alert at `medium` or above and at most one `low` alert per 1,000 events. Every rule has at least two near-miss tests, one of them a benign event of the same `eventName`. Change-tracking rules (the CIS \"changed\" set) are `low`, below the default `min_level` of an SNS topic (`medium`).\n\nTwo placeholders leave known automation and partners out. Both default to `[]`, which leaves nothing out:\n\n| placeholder | what the built-in rules leave out with it |\n| --- | --- |\n| `automation_principals` | changes by the account's own pipelines, Terraform and landing-zone roles, scanners and configuration management; list roles as `arn:aws:sts::ACCOUNT:assumed-role/ROLE/*`, the form `userIdentity.arn` has |\n| `trusted_accounts` | sharing with and policies naming accounts you work with |\n\n";

/// The anomaly extension, for the Markdown document.
const ANOMALY: &str = r#"## Anomaly rules: cloudwarden's extension to Sigma

Sigma rules and correlations say what someone wrote down. An `anomaly:` document says what is unusual for *this* account, learned from its own events: it sits in the same rule files, names the detection rules whose matches it reads (by `id` or `name`, as a correlation does; those rules then only feed it, unless `generate: true`), and has a `title`, `id`, `level`, `tags` and `description` like any rule. Time is event time, so `cloudwarden replay` of old trail files learns the history the daemon would have learned; the state is saved with every detection commit and survives restarts.

**first_seen**: a group uses a value it has not used within `history`.

```yaml
title: Principal acts in a Region it has not used for 30 days
id: 9a4c1f0e-5d2b-4c8e-9f1a-2b3c4d5e6f70
level: medium
anomaly:
    type: first_seen
    rules: [anomaly_principal_api_call]   # detection rules, by id or name
    group-by: [userIdentity|principal]     # one history per principal
    fields: [awsRegion]                    # the value watched (several fields: one value)
    history: 30d                           # a value unused this long is new again
    learning: 7d                           # a group alerts only with this much history of its own
```

Each new value alerts once (its dedup key is the rule, the group and the value), then it is known. A group younger than `learning` learns without alerting, so a new principal does not alert on everything it does; a group silent for longer than `history` starts over. `learning: 0s` alerts on the first value of every group (the root rule uses it: any root use after a quiet month, or the first one seen).

**rate**: a group's events in a bucket far over its own baseline.

```yaml
anomaly:
    type: rate
    rules: [anomaly_s3_object_deleted]
    group-by: [userIdentity|principal]
    bucket: 10m                            # buckets aligned on event time
    history: 14d                           # how far back the baseline reaches
    learning: 7d
    threshold: {factor: 10, min: 200}      # count >= min and count > factor x baseline
```

The baseline is the mean plus two standard deviations of the group's *active* buckets (those with at least one event), exponentially weighted so that a bucket's weight falls by e every `history`; it is three numbers per group whatever the history. A bucket joins the baseline once a later one begins; once the group has learned, it counts at most `factor` times the baseline it was judged against, so one burst (even one under `min`) does not teach the detector that bursts are normal, while steady growth still raises the baseline. The open bucket alerts as soon as its count passes the threshold, once per burst: the group alerts again only after a bucket that stayed under it. A principal whose normal is 3,000 deletions per 10 minutes does not alert on 2,000; one whose normal is 5 does.

Fields in `group-by` and `fields` may carry a transform, written like a Sigma modifier:

| transform | value |
| --- | --- |
| `userIdentity\|principal` | the role of an assumed-role session (`sessionContext.sessionIssuer.arn`), else `userIdentity.arn`, else `principalId`: one history per principal, not per session |
| `userAgent\|family` | the tool without version or platform: `aws-cli`, `boto3`, `terraform`, `console` (browsers and the console), `aws-sdk-go`, `kali`, ... else the first token |
| `sourceIPAddress\|network` | the /24 of an IPv4 address or the /48 of an IPv6 one; a service name in the field gives no value and the event is skipped |

An event whose group or watched field is missing is skipped and counted (`cloudwarden_anomaly_missing_field_total`). State is bounded by `detection.anomaly_max_groups` per rule (the least recently active group goes) and `detection.anomaly_max_values` per first_seen group (the least recently used value goes, and alerts again when next used); both count what they drop in `cloudwarden_anomaly_evictions_total{bound}`. Rule tests give the history an anomaly learns from under `history:` (same syntax as `events:`, including `repeat` and `every`); its alerts are not counted.

"#;

/// The rule pack as a Markdown document.
pub fn markdown(infos: &[RuleInfo]) -> String {
    let mut out = String::from(
        "# Rules\n\nGenerated by `cloudwarden rules list --format markdown`: every loaded rule with its id, level, ATT&CK tags and what it detects, then the fields cloudwarden adds to events for rules to match. Building blocks are rules that only feed correlations or anomaly rules.\n\n",
    );
    let _ = writeln!(
        out,
        "{} rules, {} of them alerting on their own.\n",
        infos.len(),
        infos.iter().filter(|i| i.alerts).count()
    );
    // By area: the folder of the built-in pack (which is by AWS service or
    // concern), else where the rule came from.
    let area = |i: &RuleInfo| -> String {
        match i.origin.strip_prefix("builtin:") {
            Some(path) => path.split('/').next().unwrap_or("other").to_owned(),
            None => "other rule files".to_owned(),
        }
    };
    let mut areas: Vec<String> = infos.iter().map(area).collect();
    areas.sort();
    areas.dedup();
    for name in &areas {
        let members: Vec<&RuleInfo> = infos.iter().filter(|i| area(i) == *name).collect();
        let _ = writeln!(out, "## {name} ({} rules)\n", members.len());
        out.push_str(
            "| id | title | level | ATT&CK technique | kind |\n| --- | --- | --- | --- | --- |\n",
        );
        for i in members {
            let kind = match &i.skipped {
                Some(why) => format!("{} (not evaluated: {why})", i.kind),
                None if i.alerts => i.kind.clone(),
                None => format!("{} (building block)", i.kind),
            };
            let techniques: Vec<String> = i
                .tags
                .iter()
                .filter_map(|t| t.strip_prefix("attack.t"))
                .map(|t| format!("T{}", t.to_ascii_uppercase()))
                .collect();
            let _ = writeln!(
                out,
                "| `{}` | {} | {} | {} | {} |",
                i.id,
                escape(&i.title),
                i.level.as_str(),
                if techniques.is_empty() {
                    "—".to_owned()
                } else {
                    techniques.join(", ")
                },
                kind,
            );
        }
        out.push('\n');
    }
    out.push_str(PRECISION);
    out.push_str(ANOMALY);
    out.push_str("## What each rule detects\n");
    for i in infos.iter().filter(|i| i.alerts) {
        let _ = write!(
            out,
            "\n### {}\n\n`{}` · {} · {}\n\n",
            escape(&i.title),
            i.id,
            i.level.as_str(),
            i.kind
        );
        if let Some(description) = &i.description {
            let _ = writeln!(out, "{}\n", description.trim());
        }
    }
    // Rules match the fields enrichment adds, so their reference lives with the rules.
    out.push('\n');
    out.push_str(&crate::detection::enrich::fields_markdown());
    out
}

fn escape(text: &str) -> String {
    text.replace('|', "\\|")
}

/// `rules test`: the tests beside `paths`, or of every loaded rule when none are given.
pub fn test(config: &Config, paths: &[PathBuf], builtin: bool) -> ExitCode {
    let (set, failures) = load(config, paths, builtin);
    let mut files: Vec<TestFile> = Vec::new();
    let mut problems: Vec<TestFileError> = Vec::new();
    let mut add =
        |origin: String, rule_origin: String, text: &str, problems: &mut Vec<TestFileError>| {
            match ruletest::parse(&origin, &rule_origin, text) {
                Ok(file) => files.push(file),
                Err(problem) => problems.push(problem),
            }
        };
    let everything = paths.is_empty();
    if everything && config.rules.builtin && builtin {
        for file in rules::FILES {
            if let Some(tests) = file.tests {
                let origin = rules::builtin_origin(file.path);
                add(
                    origin.replace(".yml", ".tests.yml"),
                    origin,
                    tests,
                    &mut problems,
                );
            }
        }
    }
    let roots: Vec<PathBuf> = if everything {
        config.rules.paths.clone()
    } else {
        paths.to_vec()
    };
    let (found, _) = rules::discover(&roots);
    for rule_file in found {
        if let Some(test_file) = rules::test_file_for(&rule_file) {
            match std::fs::read_to_string(&test_file) {
                Ok(text) => add(
                    test_file.display().to_string(),
                    rule_file.display().to_string(),
                    &text,
                    &mut problems,
                ),
                Err(err) => problems.push(TestFileError {
                    at: test_file.display().to_string(),
                    message: format!("cannot read: {err}"),
                }),
            }
        }
    }
    let engine = config.engine();
    let reload = |extra: &crate::detection::sigma::detection::Placeholders| {
        let mut rules_config = config.rules.clone();
        rules_config.builtin &= builtin;
        rules_config.placeholders.extend(extra.clone());
        Arc::new(rules::load(&rules_config, config.detection.max_group_entries, paths).0)
    };
    let mut report = ruletest::run(
        &set,
        &files,
        crate::detection::EngineConfig {
            dedup: None,
            ..engine
        },
        everything,
        Some(&reload),
    );
    report.problems.extend(problems);
    let mut passed = 0;
    for outcome in &report.rules {
        let cases = outcome.passed.len() + outcome.failed.len();
        if outcome.failed.is_empty() {
            passed += 1;
            println!(
                "PASS  {}  {} ({cases} test{})",
                outcome.rule_id,
                outcome.title,
                if cases == 1 { "" } else { "s" }
            );
        } else {
            println!("FAIL  {}  {}", outcome.rule_id, outcome.title);
            for (name, why) in &outcome.failed {
                println!("      \"{name}\": {why}");
            }
        }
    }
    for problem in &report.problems {
        println!("ERROR {}: {}", problem.at, problem.message);
    }
    for (id, title) in &report.untested {
        println!("NOTE  {id}  {title}: no tests");
    }
    println!(
        "{} rule{} tested: {passed} passed, {} failed; {} test file problem{}; {} rule{} failed to load",
        report.rules.len(),
        if report.rules.len() == 1 { "" } else { "s" },
        report.rules.len() - passed,
        report.problems.len(),
        if report.problems.len() == 1 { "" } else { "s" },
        failures,
        if failures == 1 { "" } else { "s" },
    );
    if report.success() && failures == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
