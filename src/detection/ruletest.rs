//! Rule tests: events stored beside a rule, and whether the rule alerts on them.
//!
//! `NAME.tests.yml` next to `NAME.yml` holds test cases:
//!
//! ```yaml
//! tests:
//!   - name: an admin policy attached to a user
//!     rule: 3e1f...          # optional when the file has one alerting rule
//!     match: true            # the rule must alert (false: it must not)
//!     alerts: 1              # optional: exactly this many alerts
//!     placeholders:          # optional: allow-lists for this case
//!       automation_principals: ['arn:aws:sts::111122223333:assumed-role/ci/*']
//!     history:               # optional: records seen before, whose alerts
//!       - repeat: 10080      # are not counted (what an anomaly rule learns)
//!         every: 2m
//!         event: {...}
//!     events:                # CloudTrail records, in order
//!       - eventName: AttachUserPolicy
//!         ...
//!       - repeat: 100        # the same record 100 times: eventID gets -1, -2, ...
//!         every: 2s          # and eventTime moves on 2 s each time
//!         event: {...}
//! ```
//!
//! Each case runs on a fresh engine holding the whole rule set, so filters,
//! correlations and their base rules behave as in production; open
//! correlation windows are judged at the end. Users run their own rules'
//! tests with `cloudwarden rules test` before deploying them.

use std::sync::Arc;

use super::engine::{Engine, EngineConfig, EventInput};
use super::event::Format;
use super::sigma::detection::Placeholders;
use super::sigma::document::LogSource;
use super::sigma::ruleset::RuleSet;
use super::sigma::yaml::{Node, Value, load_documents};

/// One test case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestCase {
    /// What it checks.
    pub name: String,
    /// The rule's id or name; `None` means the file's only alerting rule.
    pub rule: Option<String>,
    /// Whether the rule must alert.
    pub expect_match: bool,
    /// The exact number of alerts, when given.
    pub alerts: Option<usize>,
    /// How the events are read.
    pub format: Format,
    /// Events processed first, whose alerts are not counted: the history
    /// an anomaly rule learns from.
    pub history: Vec<String>,
    /// The events as JSON text (or plain lines), in order.
    pub events: Vec<String>,
    /// Placeholder values for this case, over the configured ones.
    pub placeholders: Option<Placeholders>,
    /// The line of the case in its file.
    pub line: usize,
}

/// The test cases of one test file.
#[derive(Debug, Clone)]
pub struct TestFile {
    /// Where the test file is.
    pub origin: String,
    /// The rule file it belongs to.
    pub rule_origin: String,
    /// Its cases.
    pub cases: Vec<TestCase>,
}

/// A problem with a test file or case itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestFileError {
    /// The file and line.
    pub at: String,
    /// What is wrong.
    pub message: String,
}

/// Reads a test file.
pub fn parse(origin: &str, rule_origin: &str, text: &str) -> Result<TestFile, TestFileError> {
    let fail = |line: usize, message: String| TestFileError {
        at: format!("{origin}:{line}"),
        message,
    };
    let docs =
        load_documents(text).map_err(|e| fail(e.line, format!("invalid YAML: {}", e.message)))?;
    let Some(doc) = docs.first() else {
        return Ok(TestFile {
            origin: origin.to_owned(),
            rule_origin: rule_origin.to_owned(),
            cases: Vec::new(),
        });
    };
    let Some(Node {
        value: Value::Seq(items),
        ..
    }) = doc.get("tests")
    else {
        return Err(fail(doc.line, "expected a list under `tests:`".to_owned()));
    };
    let mut cases = Vec::new();
    for item in items {
        let text = |key: &str| item.get(key).and_then(Node::scalar_text);
        let name = text("name").ok_or_else(|| fail(item.line, "a test needs a name".to_owned()))?;
        let expect_match = match item.get("match").map(|n| &n.value) {
            Some(Value::Bool(b)) => *b,
            _ => {
                return Err(fail(
                    item.line,
                    format!("test \"{name}\" needs match: true or false"),
                ));
            }
        };
        let alerts = match item.get("alerts") {
            None => None,
            Some(Node {
                value: Value::Int(n, _),
                ..
            }) if *n >= 0 => usize::try_from(*n).ok(),
            Some(n) => {
                return Err(fail(
                    n.line,
                    format!("test \"{name}\": alerts must be a count"),
                ));
            }
        };
        let format = match text("format").as_deref() {
            None | Some("cloudtrail") => Format::CloudTrail,
            Some("json") => Format::Json,
            Some("text") => Format::Text,
            Some(other) => {
                return Err(fail(
                    item.line,
                    format!(
                        "test \"{name}\": unknown format \"{other}\" (cloudtrail, json or text)"
                    ),
                ));
            }
        };
        let records = |events: &[Node]| -> Result<Vec<String>, TestFileError> {
            let mut out = Vec::new();
            for e in events {
                match (&e.value, format) {
                    (Value::Str(line), Format::Text) => out.push(line.clone()),
                    (_, Format::Text) => {
                        return Err(fail(
                            e.line,
                            format!("test \"{name}\": text events are strings"),
                        ));
                    }
                    _ if e.get("repeat").is_some() => out.extend(
                        repeated(e).map_err(|m| fail(e.line, format!("test \"{name}\": {m}")))?,
                    ),
                    _ => out.push(to_json(e)),
                }
            }
            Ok(out)
        };
        let events = match item.get("events").map(|n| &n.value) {
            Some(Value::Seq(events)) if !events.is_empty() => records(events)?,
            _ => {
                return Err(fail(
                    item.line,
                    format!("test \"{name}\" needs a non-empty list of events"),
                ));
            }
        };
        let history = match item.get("history") {
            None => Vec::new(),
            Some(Node {
                value: Value::Seq(events),
                ..
            }) => records(events)?,
            Some(node) => {
                return Err(fail(
                    node.line,
                    format!("test \"{name}\": history must be a list of events"),
                ));
            }
        };
        let placeholders = match item.get("placeholders") {
            None => None,
            Some(node) => Some(
                read_placeholders(node)
                    .map_err(|m| fail(node.line, format!("test \"{name}\": {m}")))?,
            ),
        };
        cases.push(TestCase {
            name,
            rule: text("rule"),
            expect_match,
            alerts,
            format,
            history,
            events,
            placeholders,
            line: item.line,
        });
    }
    Ok(TestFile {
        origin: origin.to_owned(),
        rule_origin: rule_origin.to_owned(),
        cases,
    })
}

/// `{repeat: N, every: 2s, event: {...}}`: the event N times, each with a
/// distinct eventID and, with `every`, an eventTime that moves on.
fn repeated(node: &Node) -> Result<Vec<String>, String> {
    let count = match node.get("repeat").map(|n| &n.value) {
        Some(Value::Int(n, _)) if (1..=100_000).contains(n) => usize::try_from(*n).unwrap_or(1),
        _ => return Err("repeat must be a count from 1 to 100000".to_owned()),
    };
    let every = match node.get("every").and_then(Node::scalar_text) {
        None => 0,
        Some(text) => {
            i64::try_from(super::sigma::document::timespan(&text)?.as_millis()).unwrap_or(0)
        }
    };
    let event = node
        .get("event")
        .ok_or("repeat needs the event to repeat under event:")?;
    let base: serde_json::Value =
        serde_json::from_str(&to_json(event)).map_err(|e| e.to_string())?;
    let start = base
        .get("eventTime")
        .and_then(|t| t.as_str())
        .and_then(super::event::parse_time_ms);
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let mut copy = base.clone();
        if let Some(object) = copy.as_object_mut() {
            if let Some(serde_json::Value::String(id)) = object.get_mut("eventID") {
                id.push_str(&format!("-{}", i + 1));
            }
            if let (Some(start), true) = (start, every > 0) {
                let offset = every.saturating_mul(i64::try_from(i).unwrap_or(0));
                if let Some(text) = super::event::format_time_ms(start.saturating_add(offset)) {
                    object.insert("eventTime".to_owned(), serde_json::Value::String(text));
                }
            }
        }
        out.push(copy.to_string());
    }
    Ok(out)
}

fn read_placeholders(node: &Node) -> Result<Placeholders, String> {
    let Value::Map(entries) = &node.value else {
        return Err("placeholders must map names to lists of values".to_owned());
    };
    let mut out = Placeholders::new();
    for (name, values) in entries {
        let list = match &values.value {
            Value::Seq(items) => items.iter().filter_map(Node::scalar_text).collect(),
            _ => values.scalar_text().into_iter().collect(),
        };
        out.insert(name.clone(), list);
    }
    Ok(out)
}

/// A YAML node as JSON text.
pub fn to_json(node: &Node) -> String {
    fn value(node: &Node) -> serde_json::Value {
        match &node.value {
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => serde_json::Value::Bool(*b),
            Value::Int(i, _) => serde_json::Value::from(*i),
            Value::Float(text) => text
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map_or_else(
                    || serde_json::Value::String(text.clone()),
                    serde_json::Value::Number,
                ),
            Value::Str(s) => serde_json::Value::String(s.clone()),
            Value::Seq(items) => serde_json::Value::Array(items.iter().map(value).collect()),
            Value::Map(entries) => serde_json::Value::Object(
                entries.iter().map(|(k, v)| (k.clone(), value(v))).collect(),
            ),
        }
    }
    value(node).to_string()
}

/// The result of the tests of one rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleOutcome {
    /// The rule's id.
    pub rule_id: String,
    /// Its title.
    pub title: String,
    /// Cases that passed.
    pub passed: Vec<String>,
    /// Cases that failed, with why and where.
    pub failed: Vec<(String, String)>,
    /// Matching cases.
    pub positive: usize,
    /// Non-matching cases.
    pub negative: usize,
}

/// Everything a test run found.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Per rule, in the order first tested.
    pub rules: Vec<RuleOutcome>,
    /// Test cases that could not be run (no such rule, ambiguous rule).
    pub problems: Vec<TestFileError>,
    /// Alerting rules that no test case covers.
    pub untested: Vec<(String, String)>,
}

impl Report {
    /// Whether every case passed and every case could be run.
    pub fn success(&self) -> bool {
        self.problems.is_empty() && self.rules.iter().all(|r| r.failed.is_empty())
    }
}

/// Builds the rule set again with extra placeholder values, for cases that set them.
pub type Reload<'a> = &'a dyn Fn(&Placeholders) -> Arc<RuleSet>;

/// Runs `files` against `rules`; `all_rules` decides whether untested
/// alerting rules are listed (when every rule's tests were asked for);
/// `reload` serves the cases with their own placeholders.
pub fn run(
    rules: &Arc<RuleSet>,
    files: &[TestFile],
    config: EngineConfig,
    all_rules: bool,
    reload: Option<Reload<'_>>,
) -> Report {
    let mut reloaded: Vec<(Placeholders, Arc<RuleSet>)> = Vec::new();
    let mut report = Report::default();
    let alerting: Vec<(String, String, String)> = rules
        .rules
        .iter()
        .filter(|r| r.alerts)
        .map(|r| (r.meta.id.clone(), r.meta.title.clone(), r.origin.clone()))
        .chain(
            rules
                .correlations
                .iter()
                .filter(|c| c.alerts)
                .map(|c| (c.meta.id.clone(), c.meta.title.clone(), c.origin.clone())),
        )
        .chain(
            rules
                .anomalies
                .iter()
                .filter(|a| a.alerts)
                .map(|a| (a.meta.id.clone(), a.meta.title.clone(), a.origin.clone())),
        )
        .collect();
    let resolve = |reference: &str| -> Option<(String, String)> {
        rules
            .rules
            .iter()
            .map(|r| (&r.meta, r.alerts))
            .chain(rules.correlations.iter().map(|c| (&c.meta, c.alerts)))
            .chain(rules.anomalies.iter().map(|a| (&a.meta, a.alerts)))
            .find(|(m, _)| m.id == reference || m.name.as_deref() == Some(reference))
            .map(|(m, _)| (m.id.clone(), m.title.clone()))
    };
    let logsource = LogSource::cloudtrail();
    for file in files {
        for case in &file.cases {
            let at = format!("{}:{}", file.origin, case.line);
            let target = match &case.rule {
                Some(reference) => resolve(reference).ok_or_else(|| {
                    format!(
                        "test \"{}\" names rule {reference}, which is not loaded",
                        case.name
                    )
                }),
                None => {
                    let own: Vec<&(String, String, String)> = alerting
                        .iter()
                        .filter(|(_, _, o)| *o == file.rule_origin)
                        .collect();
                    match own.as_slice() {
                        [(id, title, _)] => Ok((id.clone(), title.clone())),
                        [] => Err(format!(
                            "test \"{}\": {} has no alerting rule that loaded",
                            case.name, file.rule_origin
                        )),
                        many => Err(format!(
                            "test \"{}\" must say which rule it tests (rule: ...): the file has {} alerting rules",
                            case.name,
                            many.len()
                        )),
                    }
                }
            };
            let (rule_id, title) = match target {
                Ok(t) => t,
                Err(message) => {
                    report.problems.push(TestFileError { at, message });
                    continue;
                }
            };
            let case_rules = match &case.placeholders {
                None => Arc::clone(rules),
                Some(extra) => match (reloaded.iter().find(|(p, _)| p == extra), reload) {
                    (Some((_, set)), _) => Arc::clone(set),
                    (None, Some(reload)) => {
                        let set = reload(extra);
                        reloaded.push((extra.clone(), Arc::clone(&set)));
                        set
                    }
                    (None, None) => {
                        report.problems.push(TestFileError {
                            at,
                            message: format!(
                                "test \"{}\" sets placeholders, which this runner cannot apply",
                                case.name
                            ),
                        });
                        continue;
                    }
                },
            };
            let verdict = run_case(&case_rules, case, &rule_id, config, &logsource);
            let slot = match report.rules.iter().position(|r| r.rule_id == rule_id) {
                Some(i) => i,
                None => {
                    report.rules.push(RuleOutcome {
                        rule_id: rule_id.clone(),
                        title,
                        passed: Vec::new(),
                        failed: Vec::new(),
                        positive: 0,
                        negative: 0,
                    });
                    report.rules.len() - 1
                }
            };
            let outcome = &mut report.rules[slot];
            if case.expect_match {
                outcome.positive += 1;
            } else {
                outcome.negative += 1;
            }
            match verdict {
                Ok(()) => outcome.passed.push(case.name.clone()),
                Err(why) => outcome
                    .failed
                    .push((case.name.clone(), format!("{at}: {why}"))),
            }
        }
    }
    if all_rules {
        for (id, title, _) in &alerting {
            if !report.rules.iter().any(|r| &r.rule_id == id) {
                report.untested.push((id.clone(), title.clone()));
            }
        }
    }
    report
}

fn run_case(
    rules: &Arc<RuleSet>,
    case: &TestCase,
    rule_id: &str,
    config: EngineConfig,
    logsource: &LogSource,
) -> Result<(), String> {
    let mut engine = Engine::new(Arc::clone(rules), config);
    let input = |raw| EventInput {
        raw,
        format: case.format,
        logsource,
        source: Some("rules-test"),
        origin: None,
        time_hint_ms: None,
        dedup_id: None,
        reread_from: None,
    };
    for (i, event) in case.history.iter().enumerate() {
        engine
            .process(&input(event))
            .map_err(|rejection| format!("history event {} was rejected: {rejection}", i + 1))?;
    }
    let mut count = 0usize;
    for (i, event) in case.events.iter().enumerate() {
        let processed = engine
            .process(&input(event))
            .map_err(|rejection| format!("event {} was rejected: {rejection}", i + 1))?;
        count += processed
            .alerts
            .iter()
            .filter(|a| a.rule.id == rule_id)
            .count();
    }
    count += engine
        .finish()
        .iter()
        .filter(|a| a.rule.id == rule_id)
        .count();
    match (case.expect_match, case.alerts) {
        (_, Some(n)) if n != count => Err(format!("expected {n} alert(s), got {count}")),
        (true, _) if count == 0 => Err("expected the rule to alert, it did not".to_owned()),
        (false, _) if count > 0 => Err(format!("expected no alert, got {count}")),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests;
