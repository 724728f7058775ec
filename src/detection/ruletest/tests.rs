//! Rule test files: reading them, and verdicts that can fail.

use super::*;
use crate::detection::sigma::ruleset::{LoadOptions, RuleFile};

const RULE: &str = "title: Admin attached\nid: admin\nlogsource: {product: aws, service: cloudtrail}\ndetection:\n  selection:\n    eventName: AttachUserPolicy\n    requestParameters.policyArn|endswith: /AdministratorAccess\n  filter_ci:\n    userIdentity.arn|expand: '%automation_principals%'\n  condition: selection and not filter_ci\nlevel: high\n";

fn set(placeholders: &[(&str, &[&str])]) -> Arc<RuleSet> {
    let options = LoadOptions {
        placeholders: placeholders
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.iter().map(|s| (*s).to_owned()).collect()))
            .collect(),
        ..LoadOptions::default()
    };
    let files = [RuleFile {
        origin: "admin.yml".to_owned(),
        text: RULE.to_owned(),
        builtin: false,
    }];
    Arc::new(RuleSet::load(&files, &options))
}

fn event(arn: &str, policy: &str, id: &str) -> String {
    format!(
        "      - eventTime: '2026-11-01T10:00:00Z'\n        eventSource: iam.amazonaws.com\n        eventName: AttachUserPolicy\n        eventID: {id}\n        userIdentity: {{type: AssumedRole, arn: '{arn}'}}\n        requestParameters: {{userName: bob, policyArn: '{policy}'}}\n"
    )
}

fn tests_text() -> String {
    let admin = "arn:aws:iam::aws:policy/AdministratorAccess";
    let ro = "arn:aws:iam::aws:policy/ReadOnlyAccess";
    let ci = "arn:aws:sts::1:assumed-role/ci/run-1";
    format!(
        "tests:\n  - name: admin attached\n    match: true\n    alerts: 1\n    events:\n{}  - name: read-only attached\n    match: false\n    events:\n{}  - name: the pipeline is allowed\n    match: false\n    placeholders:\n      automation_principals: ['arn:aws:sts::1:assumed-role/ci/*']\n    events:\n{}  - name: repeated\n    match: true\n    alerts: 3\n    events:\n      - repeat: 3\n        every: 1m\n        event:\n          eventTime: '2026-11-01T10:00:00Z'\n          eventSource: iam.amazonaws.com\n          eventName: AttachUserPolicy\n          eventID: rep\n          userIdentity: {{type: AssumedRole, arn: '{ci}'}}\n          requestParameters: {{policyArn: '{admin}'}}\n",
        event(ci, admin, "e1"),
        event(ci, ro, "e2"),
        event(ci, admin, "e3"),
    )
}

#[test]
fn reads_cases_repeats_and_placeholders() {
    let file = parse("admin.tests.yml", "admin.yml", &tests_text()).unwrap();
    assert_eq!(file.cases.len(), 4);
    assert!(file.cases[0].expect_match && !file.cases[1].expect_match);
    assert!(file.cases[2].placeholders.is_some());
    let repeated = &file.cases[3].events;
    assert_eq!(repeated.len(), 3);
    assert!(
        repeated[2].contains("\"eventID\":\"rep-3\"") && repeated[2].contains("10:02:00Z"),
        "{}",
        repeated[2]
    );
}

#[test]
fn every_case_passes_and_placeholders_are_applied() {
    let file = parse("admin.tests.yml", "admin.yml", &tests_text()).unwrap();
    let reload = |p: &Placeholders| {
        let pairs: Vec<(&str, Vec<&str>)> = p
            .iter()
            .map(|(k, v)| (k.as_str(), v.iter().map(String::as_str).collect()))
            .collect();
        let refs: Vec<(&str, &[&str])> = pairs.iter().map(|(k, v)| (*k, v.as_slice())).collect();
        set(&refs)
    };
    let rules = set(&[("automation_principals", &[])]);
    let report = run(
        &rules,
        &[file],
        EngineConfig::default(),
        true,
        Some(&reload),
    );
    assert!(report.success(), "{report:?}");
    assert_eq!((report.rules[0].positive, report.rules[0].negative), (2, 2));
    // Without a way to reload, a case with placeholders cannot run.
    let file = parse("admin.tests.yml", "admin.yml", &tests_text()).unwrap();
    let report = run(&rules, &[file], EngineConfig::default(), true, None);
    assert_eq!(report.problems.len(), 1);
}

#[test]
fn a_wrong_expectation_fails_with_the_reason() {
    let text = format!(
        "tests:\n  - name: wrongly expected to match\n    match: true\n    events:\n{}",
        event(
            "arn:aws:iam::1:user/x",
            "arn:aws:iam::aws:policy/ReadOnlyAccess",
            "w1"
        )
    );
    let file = parse("admin.tests.yml", "admin.yml", &text).unwrap();
    let report = run(
        &set(&[("automation_principals", &[])]),
        &[file],
        EngineConfig::default(),
        false,
        None,
    );
    assert!(!report.success());
    assert!(
        report.rules[0].failed[0]
            .1
            .contains("expected the rule to alert"),
        "{report:?}"
    );
}

#[test]
fn bad_test_files_name_the_line() {
    let err = parse("t.yml", "r.yml", "tests:\n  - name: x\n    events: []\n").unwrap_err();
    assert!(
        err.at == "t.yml:2" && err.message.contains("match: true or false"),
        "{err:?}"
    );
    let err = parse("t.yml", "r.yml", "nothing: here\n").unwrap_err();
    assert!(err.message.contains("tests:"), "{err:?}");
}
