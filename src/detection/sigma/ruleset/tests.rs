//! Loading: errors per rule, ids, overrides, filters and correlation references.

use super::*;

fn file(origin: &str, text: &str, builtin: bool) -> RuleFile {
    RuleFile {
        origin: origin.to_owned(),
        text: text.to_owned(),
        builtin,
    }
}

fn rule(id: &str, name: &str, event: &str) -> String {
    format!(
        "title: Rule {id}\nid: {id}\nname: {name}\nlogsource: {{product: aws, service: cloudtrail}}\ndetection:\n  selection:\n    eventName: {event}\n  condition: selection\nlevel: medium\n"
    )
}

#[test]
fn a_bad_rule_is_reported_with_file_line_and_id_and_the_others_load() {
    let bad = "title: Broken\nid: b-1\ndetection:\n  selection:\n    eventName|nonsense: x\n  condition: selection\n";
    let set = RuleSet::load(
        &[
            file("good.yml", &rule("g-1", "good", "CreateUser"), false),
            file("bad.yml", bad, false),
            file("yaml.yml", "title: [unclosed\n", false),
        ],
        &LoadOptions::default(),
    );
    assert_eq!(set.rules.len(), 1);
    assert_eq!(set.errors.len(), 2);
    let text = |origin: &str| {
        set.errors
            .iter()
            .find(|e| e.origin == origin)
            .map(ToString::to_string)
            .unwrap_or_default()
    };
    let bad = text("bad.yml");
    assert!(
        bad.starts_with("bad.yml:5: rule b-1 (Broken): detection.selection: eventName|nonsense: "),
        "{bad}"
    );
    assert!(bad.contains("unknown modifier \"nonsense\""), "{bad}");
    let yaml = text("yaml.yml");
    assert!(yaml.starts_with("yaml.yml:2: invalid YAML"), "{yaml}");
}

#[test]
fn user_rules_replace_builtin_ones_duplicates_elsewhere_are_errors() {
    let set = RuleSet::load(
        &[
            file("builtin:a.yml", &rule("x", "x_builtin", "A"), true),
            file("mine.yml", &rule("x", "x_mine", "B"), false),
            file("again.yml", &rule("x", "x_again", "C"), false),
        ],
        &LoadOptions::default(),
    );
    assert_eq!(set.rules.len(), 1);
    assert_eq!(set.rules[0].origin, "mine.yml");
    assert!(
        set.warnings[0]
            .message
            .contains("replaces the built-in rule")
    );
    assert!(
        set.errors[0].message.contains("duplicate rule id"),
        "{:?}",
        set.errors
    );
}

#[test]
fn disabled_ids_and_names_are_not_loaded() {
    let options = LoadOptions {
        disabled: ["a".to_owned(), "name_b".to_owned()].into_iter().collect(),
        ..LoadOptions::default()
    };
    let set = RuleSet::load(
        &[
            file("a.yml", &rule("a", "name_a", "A"), false),
            file("b.yml", &rule("b", "name_b", "B"), false),
            file("c.yml", &rule("c", "name_c", "C"), false),
        ],
        &options,
    );
    let ids: Vec<&str> = set.rules.iter().map(|r| r.meta.id.as_str()).collect();
    assert_eq!(ids, ["c"]);
}

#[test]
fn filters_attach_to_the_rules_they_name() {
    let filter = "title: Leave out the pipeline\nlogsource: {product: aws}\nfilter:\n  rules: [name_a, missing]\n  selection:\n    userIdentity.arn: 'arn:aws:iam::1:role/ci'\n  condition: not selection\n";
    let set = RuleSet::load(
        &[
            file("a.yml", &rule("a", "name_a", "A"), false),
            file("f.yml", filter, false),
        ],
        &LoadOptions::default(),
    );
    assert_eq!(set.rules[0].filters.len(), 1);
    assert!(
        set.warnings.iter().any(|w| w.message.contains("missing")),
        "{:?}",
        set.warnings
    );
}

#[test]
fn correlations_resolve_names_silence_their_inputs_and_refuse_cycles() {
    let corr = |id: &str, refs: &str, generate: bool| {
        format!(
            "title: Corr {id}\nid: {id}\nname: {id}\ncorrelation:\n  type: event_count\n  rules: [{refs}]\n  group-by: [userIdentity.arn]\n  timespan: 5m\n  condition: {{gte: 2}}\n  generate: {generate}\n"
        )
    };
    let set = RuleSet::load(
        &[
            file("a.yml", &rule("a", "name_a", "A"), false),
            file("b.yml", &rule("b", "name_b", "B"), false),
            file("c1.yml", &corr("c1", "name_a", false), false),
            file("c2.yml", &corr("c2", "name_b", true), false),
            file("c3.yml", &corr("c3", "nope", false), false),
            file("x.yml", &corr("x", "y", false), false),
            file("y.yml", &corr("y", "x", false), false),
        ],
        &LoadOptions::default(),
    );
    let a = set.rules.iter().find(|r| r.meta.id == "a").unwrap();
    let b = set.rules.iter().find(|r| r.meta.id == "b").unwrap();
    assert!(
        !a.alerts,
        "a building block of c1 does not alert on its own"
    );
    assert!(b.alerts, "generate: true keeps b alerting");
    assert_eq!(a.consumers.len(), 1);
    let messages: Vec<String> = set.errors.iter().map(ToString::to_string).collect();
    assert!(
        messages
            .iter()
            .any(|m| m.contains("c3") && m.contains("refers to rule nope, which is not loaded")),
        "{messages:?}"
    );
    assert!(messages.iter().any(|m| m.contains("cycle")), "{messages:?}");
    let ids: Vec<&str> = set
        .correlations
        .iter()
        .map(|c| c.meta.id.as_str())
        .collect();
    assert_eq!(ids, ["c1", "c2"]);
    // A correlation without a level is as severe as its worst input.
    assert_eq!(
        set.correlations[0].meta.level,
        crate::detection::Level::Medium
    );
}

#[test]
fn constructs_the_specification_forbids_are_refused_by_name() {
    let re_expand = "title: R\nid: re-expand\ndetection:\n  selection:\n    userIdentity.arn|re|expand: '%admins%'\n  condition: selection\n";
    let all_one = "title: A\nid: all-one\ndetection:\n  selection:\n    eventName|contains|all: Create\n  condition: selection\n";
    let set = RuleSet::load(
        &[
            file("re.yml", re_expand, false),
            file("all.yml", all_one, false),
        ],
        &LoadOptions::default(),
    );
    assert!(set.rules.is_empty());
    let messages: Vec<String> = set.errors.iter().map(ToString::to_string).collect();
    assert!(
        messages
            .iter()
            .any(|m| m.contains("re-expand") && m.contains("re cannot be combined with expand")),
        "{messages:?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.contains("all-one") && m.contains("all needs a list")),
        "{messages:?}"
    );
}

#[test]
fn a_filter_whose_logsource_cannot_apply_is_not_attached_and_said_so() {
    let windows_filter = "title: F\nid: f-1\nlogsource: {product: windows}\nfilter:\n  rules: [g-1]\n  selection:\n    eventName: CreateUser\n  condition: not selection\n";
    let iam_filter = "title: F2\nid: f-2\nlogsource: {product: aws, service: iam}\nfilter:\n  rules: [g-1]\n  selection:\n    userIdentity.arn: x\n  condition: not selection\n";
    let set = RuleSet::load(
        &[
            file("good.yml", &rule("g-1", "good", "CreateUser"), false),
            file("wf.yml", windows_filter, false),
            file("if.yml", iam_filter, false),
        ],
        &LoadOptions::default(),
    );
    assert!(set.errors.is_empty(), "{:?}", set.errors);
    // The AWS-service filter applies to a CloudTrail rule; the Windows one does not.
    assert_eq!(set.rules[0].filters.len(), 1);
    assert!(
        set.warnings
            .iter()
            .any(|w| w.origin == "wf.yml" && w.message.contains("cannot apply")),
        "{:?}",
        set.warnings
    );
}
