//! Where rules come from: the built-in pack embedded in the binary, and
//! rule files or folders on disk, each with its test file beside it.
//!
//! A rule file is any `*.yml` or `*.yaml`; `NAME.tests.yml` next to
//! `NAME.yml` holds that file's test events (see
//! [`crate::detection::ruletest`]). Folders are read recursively, in name
//! order, so loading is the same on every machine.

use std::path::{Path, PathBuf};

use crate::config::{Config, KeyPath, RulesConfig};
use crate::detection::sigma::document::LogSource;
use crate::detection::sigma::ruleset::{CompiledRule, LoadOptions, RuleFile, RuleSet};

/// A rule file of the built-in pack.
#[derive(Debug, Clone, Copy)]
pub struct BuiltinFile {
    /// Its path under `config/rules/`.
    pub path: &'static str,
    /// Its YAML.
    pub text: &'static str,
    /// The test file beside it.
    pub tests: Option<&'static str>,
}

include!(concat!(env!("OUT_DIR"), "/builtin_rules.rs"));

/// Rule files larger than this are refused: no rule file comes close.
pub const MAX_RULE_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// The origin written for built-in rule files.
pub fn builtin_origin(path: &str) -> String {
    format!("builtin:{path}")
}

/// The built-in pack as rule files.
pub fn builtin() -> Vec<RuleFile> {
    FILES
        .iter()
        .map(|f| RuleFile {
            origin: builtin_origin(f.path),
            text: f.text.to_owned(),
            builtin: true,
        })
        .collect()
}

/// A rule file or folder that could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadProblem {
    /// The path.
    pub path: PathBuf,
    /// Why.
    pub message: String,
}

/// Every rule file under `paths` (files as given, folders recursively), in order.
pub fn discover(paths: &[PathBuf]) -> (Vec<PathBuf>, Vec<ReadProblem>) {
    let mut files = Vec::new();
    let mut problems = Vec::new();
    for path in paths {
        if path.is_dir() {
            walk(path, &mut files, &mut problems);
        } else if path.exists() {
            files.push(path.clone());
        } else {
            problems.push(ReadProblem {
                path: path.clone(),
                message: "no such file or folder".to_owned(),
            });
        }
    }
    // A file named twice (a folder in rules.paths also given on the command
    // line, or a file inside a listed folder) is read once, not refused as a
    // duplicate of itself.
    let mut seen = std::collections::HashSet::new();
    files.retain(|file| seen.insert(std::fs::canonicalize(file).unwrap_or_else(|_| file.clone())));
    (files, problems)
}

fn walk(dir: &Path, files: &mut Vec<PathBuf>, problems: &mut Vec<ReadProblem>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) => {
            problems.push(ReadProblem {
                path: dir.to_owned(),
                message: format!("cannot read folder: {err}"),
            });
            return;
        }
    };
    let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    paths.sort();
    for path in paths {
        if path.is_dir() {
            walk(&path, files, problems);
        } else if is_rule_file(&path) {
            files.push(path);
        }
    }
}

/// Whether `path` names a rule file (not a test file).
pub fn is_rule_file(path: &Path) -> bool {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    (name.ends_with(".yml") || name.ends_with(".yaml")) && !is_test_file(path)
}

/// Whether `path` names a rule test file.
pub fn is_test_file(path: &Path) -> bool {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    name.ends_with(".tests.yml") || name.ends_with(".tests.yaml")
}

/// The test file beside a rule file, when there is one.
pub fn test_file_for(rule: &Path) -> Option<PathBuf> {
    let name = rule.file_name()?.to_str()?;
    let stem = name
        .strip_suffix(".yml")
        .or_else(|| name.strip_suffix(".yaml"))?;
    ["tests.yml", "tests.yaml"]
        .iter()
        .map(|ext| rule.with_file_name(format!("{stem}.{ext}")))
        .find(|p| p.exists())
}

/// Reads rule files from disk.
pub fn read_files(paths: &[PathBuf]) -> (Vec<RuleFile>, Vec<ReadProblem>) {
    let mut files = Vec::new();
    let mut problems = Vec::new();
    for path in paths {
        let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        if size > MAX_RULE_FILE_BYTES {
            problems.push(ReadProblem {
                path: path.clone(),
                message: format!(
                    "{size} bytes: larger than the {MAX_RULE_FILE_BYTES}-byte limit for rule files"
                ),
            });
            continue;
        }
        match std::fs::read_to_string(path) {
            Ok(text) => files.push(RuleFile {
                origin: path.display().to_string(),
                text,
                builtin: false,
            }),
            Err(err) => problems.push(ReadProblem {
                path: path.clone(),
                message: format!("cannot read rule file: {err}"),
            }),
        }
    }
    (files, problems)
}

/// The rule files configuration asks for: the built-in pack when enabled,
/// then `rules.paths`, then `extra` (command-line paths).
pub fn configured_files(
    config: &RulesConfig,
    extra: &[PathBuf],
) -> (Vec<RuleFile>, Vec<ReadProblem>) {
    let mut files = if config.builtin {
        builtin()
    } else {
        Vec::new()
    };
    let mut paths = config.paths.clone();
    paths.extend(extra.iter().cloned());
    let (found, mut problems) = discover(&paths);
    let (read, read_problems) = read_files(&found);
    files.extend(read);
    problems.extend(read_problems);
    (files, problems)
}

/// Loads the rule set configuration asks for; `max_group_entries` is
/// `detection.max_group_entries`, which bounds what a correlation can count.
pub fn load(
    config: &RulesConfig,
    max_group_entries: usize,
    extra: &[PathBuf],
) -> (RuleSet, Vec<ReadProblem>) {
    let (files, problems) = configured_files(config, extra);
    let options = LoadOptions {
        placeholders: config.placeholders.clone(),
        disabled: config.disabled.iter().cloned().collect(),
        max_group_entries,
    };
    (RuleSet::load(&files, &options), problems)
}

/// The rule ids configuration names that no rule file defines (a typo in
/// `rules.disabled`, an SNS route or a suppression would otherwise silently
/// do nothing), each with its key.
pub(crate) fn unknown_ids(config: &Config, set: &RuleSet) -> Vec<(KeyPath, String)> {
    // The alerts cloudwarden raises itself (alarm drift and wiring) have ids
    // of their own that no rule file defines.
    let internal = [
        crate::alarms::task::DRIFT_RULE,
        crate::alarms::task::WIRING_RULE,
        crate::posture::task::CHANGE_RULE,
        crate::response::worker::RESPONSE_RULE,
    ];
    // Posture findings alert under their check's id.
    let known = |id: &str| {
        internal.contains(&id)
            || crate::posture::catalog::find(id).is_some()
            || set.ids.contains(id)
            || set.errors.iter().any(|e| e.id.as_deref() == Some(id))
    };
    // Routes and suppressions match alerts by rule id; `rules.disabled`
    // also takes names.
    let unknown = |id: &str| {
        if set.names.contains(id) {
            format!("\"{id}\" is a rule's name; alerts are matched by rule id: use the rule's id")
        } else {
            format!("no rule has the id \"{id}\"")
        }
    };
    let mut found = Vec::new();
    for (i, id) in config.rules.disabled.iter().enumerate() {
        if !known(id) && !set.names.contains(id) {
            found.push((
                KeyPath::root("rules").key("disabled").index(i),
                format!("no rule has the id or name \"{id}\""),
            ));
        }
    }
    for (i, topic) in config.alerts.sns.iter().enumerate() {
        for (j, id) in topic.rules.iter().enumerate() {
            if !known(id) {
                let key = KeyPath::root("alerts")
                    .key("sns")
                    .index(i)
                    .key("rules")
                    .index(j);
                found.push((key, unknown(id)));
            }
        }
    }
    for (i, suppression) in config.alerts.suppress.iter().enumerate() {
        if let Some(id) = suppression.rule.as_deref().filter(|id| !known(id)) {
            let key = KeyPath::root("alerts").key("suppress").index(i).key("rule");
            found.push((key, unknown(id)));
        }
    }
    for (i, action) in config.response.actions.iter().enumerate() {
        for (j, id) in action.rules.iter().enumerate() {
            let key = KeyPath::root("response")
                .key("actions")
                .index(i)
                .key("rules")
                .index(j);
            match set.rules.iter().find(|r| r.meta.id == *id) {
                None if !known(id) => found.push((key, unknown(id))),
                None => {}
                Some(rule) => {
                    if let Some(problem) = cannot_feed(action.action, rule) {
                        found.push((key, problem));
                    }
                }
            }
        }
    }
    found
}

/// Why `rule`'s alerts cannot give `action` what it needs, when the
/// eventNames the rule requires tell: none of them carries the field.
fn cannot_feed(action: crate::response::actions::Action, rule: &CompiledRule) -> Option<String> {
    let (field, events) = action.needs();
    let events = events?;
    let required = rule.detection.required_values();
    let names = required
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("eventName"))
        .map(|(_, v)| v)?;
    let carries = names.iter().any(|name| {
        events
            .iter()
            .any(|e| e.as_bytes().eq_ignore_ascii_case(name))
    });
    if carries {
        return None;
    }
    let listed: Vec<String> = names
        .iter()
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .collect();
    Some(format!(
        "{} needs {field}, which only {} events carry; rule \"{}\" matches {}",
        action.name(),
        events.join(", "),
        rule.meta.id,
        listed.join(", ")
    ))
}

/// The rules that no configured source feeds, by their `logsource`: they
/// will never see an event, which a user should hear about rather than
/// find out. Rules not evaluated (by status) are left out.
pub fn unfed<'a>(set: &'a RuleSet, sources: &[LogSource]) -> Vec<&'a CompiledRule> {
    set.rules
        .iter()
        .filter(|r| r.skipped.is_none())
        .filter(|r| !sources.iter().any(|s| r.meta.logsource.admits(s)))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Arc;

    use super::*;

    #[test]
    fn a_rule_file_named_twice_is_read_once() {
        let dir = tempfile::tempdir().unwrap();
        let rule = dir.path().join("r.yml");
        std::fs::write(&rule, "title: t").unwrap();
        let dotted = dir.path().join(".").join("r.yml");
        let (files, problems) = discover(&[dir.path().to_owned(), rule.clone(), dotted]);
        assert!(problems.is_empty());
        assert_eq!(files, [rule]);
    }
    use crate::detection::EngineConfig;
    use crate::detection::ruletest;

    fn builtin_config() -> RulesConfig {
        RulesConfig {
            builtin: true,
            paths: Vec::new(),
            disabled: Vec::new(),
            placeholders: [
                ("automation_principals", Vec::new()),
                ("trusted_accounts", Vec::new()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect::<HashMap<String, Vec<String>>>(),
        }
    }

    #[test]
    fn the_builtin_pack_loads_without_errors_and_is_big_enough() {
        let (set, problems) = load(&builtin_config(), 1000, &[]);
        assert!(
            problems.is_empty() && set.errors.is_empty(),
            "{problems:?} {:?}",
            set.errors
        );
        let alerting = set.rules.iter().filter(|r| r.alerts).count()
            + set.correlations.iter().filter(|c| c.alerts).count();
        assert!(alerting >= 60, "{alerting} alerting rules");
        // Every alerting rule says why it matters and carries ATT&CK tags.
        for meta in set
            .rules
            .iter()
            .filter(|r| r.alerts)
            .map(|r| &r.meta)
            .chain(
                set.correlations
                    .iter()
                    .filter(|c| c.alerts)
                    .map(|c| &c.meta),
            )
            .chain(set.anomalies.iter().filter(|a| a.alerts).map(|a| &a.meta))
        {
            assert!(
                meta.description.as_deref().is_some_and(|d| d.len() > 40),
                "{}: description",
                meta.id
            );
            assert!(
                meta.tags.iter().any(|t| t.starts_with("attack.")),
                "{}: tags",
                meta.id
            );
            assert!(
                !meta.falsepositives.is_empty(),
                "{}: falsepositives",
                meta.id
            );
        }
    }

    #[test]
    fn every_builtin_rule_has_passing_matching_and_non_matching_tests() {
        let config = builtin_config();
        let (set, _) = load(&config, 1000, &[]);
        let set = Arc::new(set);
        let mut files = Vec::new();
        for file in FILES {
            let tests = file
                .tests
                .unwrap_or_else(|| panic!("{} has no test file beside it", file.path));
            let origin = builtin_origin(file.path);
            files.push(
                ruletest::parse(&origin.replace(".yml", ".tests.yml"), &origin, tests).unwrap(),
            );
        }
        let reload = |extra: &crate::detection::sigma::detection::Placeholders| {
            let mut config = builtin_config();
            config.placeholders.extend(extra.clone());
            Arc::new(load(&config, 1000, &[]).0)
        };
        let report = ruletest::run(&set, &files, EngineConfig::default(), true, Some(&reload));
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        for outcome in &report.rules {
            assert!(
                outcome.failed.is_empty(),
                "{}: {:?}",
                outcome.rule_id,
                outcome.failed
            );
            assert!(
                outcome.positive >= 1 && outcome.negative >= 1,
                "{}: {} matching, {} not",
                outcome.rule_id,
                outcome.positive,
                outcome.negative
            );
        }
        assert!(
            report.untested.is_empty(),
            "untested: {:?}",
            report.untested
        );
    }
}
