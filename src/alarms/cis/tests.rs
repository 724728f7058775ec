//! The CIS catalogue against the reference: counts, numbers, ids, metric
//! names and pattern texts for every benchmark text.

use std::collections::HashSet;

use super::*;

const ALL: [Benchmark; 4] = [
    Benchmark::V1_4,
    Benchmark::V4,
    Benchmark::V6,
    Benchmark::SecurityHub,
];

/// The reference table's rows in order: the nth is 4.n in v1.4–v5.0 and 5.n in
/// v6/v7.
const CIS_ORDER: [&str; 15] = [
    "unauthorized-api-calls",
    "console-sign-in-without-mfa",
    "root-account-usage",
    "iam-policy-changes",
    "cloudtrail-configuration-changes",
    "console-authentication-failures",
    "kms-key-disable-or-deletion",
    "s3-bucket-policy-changes",
    "aws-config-changes",
    "security-group-changes",
    "network-acl-changes",
    "network-gateway-changes",
    "route-table-changes",
    "vpc-changes",
    "aws-organizations-changes",
];

/// The reference table's Security Hub column (no Organizations check).
const HUB_NUMBERS: [(&str, &str); 14] = [
    ("unauthorized-api-calls", "CloudWatch.2"),
    ("console-sign-in-without-mfa", "CloudWatch.3"),
    ("root-account-usage", "CloudWatch.1"),
    ("iam-policy-changes", "CloudWatch.4"),
    ("cloudtrail-configuration-changes", "CloudWatch.5"),
    ("console-authentication-failures", "CloudWatch.6"),
    ("kms-key-disable-or-deletion", "CloudWatch.7"),
    ("s3-bucket-policy-changes", "CloudWatch.8"),
    ("aws-config-changes", "CloudWatch.9"),
    ("security-group-changes", "CloudWatch.10"),
    ("network-acl-changes", "CloudWatch.11"),
    ("network-gateway-changes", "CloudWatch.12"),
    ("route-table-changes", "CloudWatch.13"),
    ("vpc-changes", "CloudWatch.14"),
];

/// The controls whose pattern the reference says differs between texts.
const VARYING: [&str; 5] = [
    "unauthorized-api-calls",
    "console-sign-in-without-mfa",
    "root-account-usage",
    "console-authentication-failures",
    "security-group-changes",
];

fn control(benchmark: Benchmark, id: &str) -> Control {
    controls(benchmark)
        .into_iter()
        .find(|c| c.id == id)
        .unwrap_or_else(|| panic!("{id} is missing from {benchmark:?}"))
}

fn pattern(benchmark: Benchmark, id: &str) -> String {
    control(benchmark, id).pattern
}

fn expected_number(benchmark: Benchmark, id: &str) -> Option<String> {
    let row = CIS_ORDER.iter().position(|row| *row == id).map(|i| i + 1);
    match benchmark {
        Benchmark::V1_4 | Benchmark::V4 => row.map(|n| format!("4.{n}")),
        Benchmark::V6 => row.map(|n| format!("5.{n}")),
        Benchmark::SecurityHub => HUB_NUMBERS
            .iter()
            .find(|(hub_id, _)| *hub_id == id)
            .map(|(_, number)| (*number).to_owned()),
    }
}

fn parentheses_balance(pattern: &str) -> bool {
    let mut depth = 0_i32;
    for ch in pattern.chars() {
        match ch {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth < 0 {
                    return false;
                }
            }
            _ => {}
        }
    }
    depth == 0
}

#[test]
fn cis_texts_have_fifteen_controls() {
    for benchmark in [Benchmark::V1_4, Benchmark::V4, Benchmark::V6] {
        assert_eq!(controls(benchmark).len(), 15, "{benchmark:?}");
    }
}

#[test]
fn security_hub_has_fourteen_controls_and_no_organizations_control() {
    let hub = controls(Benchmark::SecurityHub);
    assert_eq!(hub.len(), 14);
    assert!(hub.iter().all(|c| c.id != "aws-organizations-changes"));
}

#[test]
fn ids_are_unique_within_every_benchmark_and_all_known() {
    for benchmark in ALL {
        let mut seen = HashSet::new();
        for c in controls(benchmark) {
            assert!(seen.insert(c.id), "{} twice in {benchmark:?}", c.id);
            assert!(ids().contains(&c.id), "{} not in ids()", c.id);
        }
    }
}

#[test]
fn ids_list_every_topic_once_in_cis_order() {
    let listed: Vec<&str> = controls(Benchmark::V1_4).iter().map(|c| c.id).collect();
    assert_eq!(ids(), listed.as_slice());
    assert_eq!(ids(), CIS_ORDER.as_slice());
    assert_eq!(ids().iter().collect::<HashSet<_>>().len(), 15);
}

#[test]
fn ids_are_lowercase_slugs() {
    for id in ids() {
        assert!(
            !id.is_empty() && !id.starts_with('-') && !id.ends_with('-'),
            "{id}"
        );
        assert!(
            id.chars()
                .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-'),
            "{id}"
        );
    }
}

#[test]
fn numbers_follow_the_reference_table() {
    for benchmark in ALL {
        let listed = controls(benchmark);
        for c in &listed {
            let expected = expected_number(benchmark, c.id);
            assert_eq!(Some(c.number.to_owned()), expected, "{benchmark:?}");
        }
        let expected = CIS_ORDER
            .iter()
            .filter(|id| expected_number(benchmark, id).is_some())
            .count();
        assert_eq!(listed.len(), expected, "{benchmark:?}");
    }
}

#[test]
fn root_account_usage_is_numbered_per_version() {
    let number = |benchmark: Benchmark| control(benchmark, "root-account-usage").number;
    assert_eq!(number(Benchmark::V1_4), "4.3");
    assert_eq!(number(Benchmark::V4), "4.3");
    assert_eq!(number(Benchmark::V6), "5.3");
    assert_eq!(number(Benchmark::SecurityHub), "CloudWatch.1");
}

#[test]
fn controls_come_in_benchmark_order() {
    for benchmark in ALL {
        let prefix = match benchmark {
            Benchmark::V1_4 | Benchmark::V4 => "4.",
            Benchmark::V6 => "5.",
            Benchmark::SecurityHub => "CloudWatch.",
        };
        for (i, c) in controls(benchmark).iter().enumerate() {
            assert_eq!(c.number, format!("{prefix}{}", i + 1), "{benchmark:?}");
        }
    }
}

#[test]
fn v6_security_group_filter_adds_modify_security_group_rules() {
    let id = "security-group-changes";
    assert!(pattern(Benchmark::V6, id).contains("($.eventName = ModifySecurityGroupRules)"));
    for benchmark in [Benchmark::V1_4, Benchmark::V4, Benchmark::SecurityHub] {
        assert!(
            !pattern(benchmark, id).contains("ModifySecurityGroupRules"),
            "{benchmark:?}"
        );
    }
}

#[test]
fn every_pattern_is_one_braced_line_with_balanced_parentheses() {
    for benchmark in ALL {
        for c in controls(benchmark) {
            let (p, at) = (&c.pattern, format!("{benchmark:?} {}", c.id));
            assert!(p.starts_with('{') && p.ends_with('}'), "{at}");
            assert_eq!(p.matches('{').count(), 1, "{at}");
            assert_eq!(p.matches('}').count(), 1, "{at}");
            assert!(parentheses_balance(p), "{at}");
            assert!(!p.contains('\n') && !p.contains("  "), "{at}");
        }
    }
}

#[test]
fn metric_names_are_unique_camel_case() {
    let mut seen = HashSet::new();
    for c in controls(Benchmark::V1_4) {
        assert!(seen.insert(c.metric_name), "{} twice", c.metric_name);
        let first = c.metric_name.chars().next();
        assert!(
            first.is_some_and(|ch| ch.is_ascii_uppercase()),
            "{}",
            c.metric_name
        );
        assert!(c.metric_name.chars().all(|ch| ch.is_ascii_alphanumeric()));
    }
    assert_eq!(seen.len(), 15);
}

#[test]
fn ids_titles_and_metric_names_do_not_depend_on_the_benchmark() {
    let cis = controls(Benchmark::V1_4);
    for benchmark in ALL {
        for c in controls(benchmark) {
            let base = cis.iter().find(|b| b.id == c.id).expect("in v1.4");
            assert_eq!((c.title, c.metric_name), (base.title, base.metric_name));
        }
    }
}

#[test]
fn parse_round_trips_every_name() {
    assert_eq!(Benchmark::NAMES.len(), ALL.len());
    for name in Benchmark::NAMES {
        assert_eq!(Benchmark::parse(name).map(Benchmark::as_str), Some(*name));
    }
    for benchmark in ALL {
        assert_eq!(Benchmark::parse(benchmark.as_str()), Some(benchmark));
    }
}

#[test]
fn parse_rejects_other_spellings() {
    let texts = [
        "",
        "V1.4",
        "v1.2",
        "v1.4.0",
        "v5",
        "v7",
        " v4",
        "security-hub",
    ];
    for text in texts {
        assert!(Benchmark::parse(text).is_none(), "{text:?}");
    }
}

#[test]
fn v1_4_unauthorized_filter_keeps_the_benchmark_flaw() {
    let p = pattern(Benchmark::V1_4, "unauthorized-api-calls");
    assert!(p.contains(r#"|| ($.sourceIPAddress!="delivery.logs.amazonaws.com") ||"#));
    assert!(p.ends_with(r#"|| ($.eventName!="HeadBucket") }"#));
}

#[test]
fn security_hub_unauthorized_filter_is_the_corrected_two_terms() {
    assert_eq!(
        pattern(Benchmark::SecurityHub, "unauthorized-api-calls"),
        r#"{ ($.errorCode = "*UnauthorizedOperation") || ($.errorCode = "AccessDenied*") }"#
    );
}

#[test]
fn v4_unauthorized_filter_binds_the_exclusions_with_and() {
    assert_eq!(
        pattern(Benchmark::V4, "unauthorized-api-calls"),
        concat!(
            "{ ($.errorCode =*UnauthorizedOperation) || ($.errorCode =AccessDenied*) && ",
            "($.sourceIPAddress!=delivery.logs.amazonaws.com) && ($.eventName!=HeadBucket) }",
        )
    );
}

#[test]
fn v6_unauthorized_filter_keeps_the_v4_correction_not_the_v1_4_flaw() {
    let id = "unauthorized-api-calls";
    assert_eq!(pattern(Benchmark::V6, id), pattern(Benchmark::V4, id));
    assert_ne!(pattern(Benchmark::V6, id), pattern(Benchmark::V1_4, id));
}

#[test]
fn security_hub_mfa_filter_counts_only_successful_iam_user_sign_ins() {
    let id = "console-sign-in-without-mfa";
    let base = pattern(Benchmark::V1_4, id);
    let hub = pattern(Benchmark::SecurityHub, id);
    let stem = base.strip_suffix(" }").expect("v1.4 text ends with ' }'");
    let added = r#" && ($.userIdentity.type = "IAMUser") && "#.to_owned()
        + r#"($.responseElements.ConsoleLogin = "Success") }"#;
    assert_eq!(hub, format!("{stem}{added}"));
}

#[test]
fn v4_onward_write_mfa_root_and_failure_values_unquoted() {
    for id in [
        "console-sign-in-without-mfa",
        "root-account-usage",
        "console-authentication-failures",
    ] {
        let quoted = pattern(Benchmark::V1_4, id);
        assert!(quoted.contains('"'), "{id}");
        for benchmark in [Benchmark::V4, Benchmark::V6] {
            assert_eq!(
                pattern(benchmark, id),
                quoted.replace('"', ""),
                "{benchmark:?} {id}"
            );
        }
    }
    let mfa = pattern(Benchmark::V4, "console-sign-in-without-mfa");
    assert!(mfa.contains("($.additionalEventData.MFAUsed != Yes)"));
    let failures = pattern(Benchmark::V4, "console-authentication-failures");
    assert!(failures.contains("($.errorMessage = Failed authentication)"));
}

#[test]
fn controls_without_a_named_difference_share_the_v1_4_text() {
    for id in ids() {
        if VARYING.contains(id) {
            continue;
        }
        let base = pattern(Benchmark::V1_4, id);
        for benchmark in ALL {
            if let Some(c) = controls(benchmark).into_iter().find(|c| c.id == *id) {
                assert_eq!(c.pattern, base, "{benchmark:?} {id}");
            }
        }
    }
}

#[test]
fn organizations_filter_keeps_its_quoted_event_names() {
    let p = pattern(Benchmark::V6, "aws-organizations-changes");
    assert!(p.starts_with("{ ($.eventSource = organizations.amazonaws.com) && "));
    assert!(p.contains(r#"($.eventName = "UpdateOrganizationalUnit")) }"#));
}
