//! JSON filter patterns: the CIS benchmark patterns, equivalence, precedence,
//! value types, and malformed input that must fail cleanly.

use serde_json::json;

use super::*;

fn pattern(text: &str) -> Pattern {
    parse(text).unwrap_or_else(|e| panic!("{text:?} should parse: {e}"))
}

fn equivalent(a: &str, b: &str) -> bool {
    pattern(a).equivalent(&pattern(b))
}

#[test]
fn cis_unauthorized_api_calls_match_prefix_and_suffix_wildcards() {
    let p = pattern(
        r#"{ ($.errorCode = "*UnauthorizedOperation") || ($.errorCode = "AccessDenied*") }"#,
    );
    assert!(p.matches(&json!({"errorCode": "Client.UnauthorizedOperation"})));
    assert!(p.matches(&json!({"errorCode": "UnauthorizedOperation"})));
    assert!(p.matches(&json!({"errorCode": "AccessDenied"})));
    assert!(p.matches(&json!({"errorCode": "AccessDeniedException"})));

    assert!(!p.matches(&json!({"errorCode": "UnauthorizedOperationX"})));
    assert!(!p.matches(&json!({"errorCode": "NotAccessDenied"})));
    assert!(!p.matches(&json!({"errorCode": "ThrottlingException"})));
    assert!(!p.matches(&json!({"eventName": "ConsoleLogin"})));
}

#[test]
fn cis_console_login_without_mfa_needs_the_mfa_field_present() {
    let p = pattern(
        r#"{ ($.eventName = "ConsoleLogin") && ($.additionalEventData.MFAUsed != "Yes") }"#,
    );
    assert!(p.matches(&json!({
        "eventName": "ConsoleLogin",
        "additionalEventData": {"MFAUsed": "No"}
    })));

    assert!(!p.matches(&json!({
        "eventName": "ConsoleLogin",
        "additionalEventData": {"MFAUsed": "Yes"}
    })));
    assert!(!p.matches(&json!({
        "eventName": "GetCallerIdentity",
        "additionalEventData": {"MFAUsed": "No"}
    })));
    // CloudWatch does not let a missing field satisfy `!=`.
    assert!(!p.matches(&json!({"eventName": "ConsoleLogin"})));
    assert!(!p.matches(&json!({"eventName": "ConsoleLogin", "additionalEventData": {}})));
}

#[test]
fn cis_root_usage_combines_equality_not_exists_and_not_equal() {
    let p = pattern(concat!(
        r#"{ $.userIdentity.type = "Root" && $.userIdentity.invokedBy NOT EXISTS "#,
        r#"&& $.eventType != "AwsServiceEvent" }"#,
    ));
    assert!(p.matches(&json!({
        "userIdentity": {"type": "Root"},
        "eventType": "AwsApiCall"
    })));

    assert!(!p.matches(&json!({
        "userIdentity": {"type": "Root", "invokedBy": "cloudtrail.amazonaws.com"},
        "eventType": "AwsApiCall"
    })));
    assert!(!p.matches(&json!({
        "userIdentity": {"type": "Root"},
        "eventType": "AwsServiceEvent"
    })));
    assert!(!p.matches(&json!({
        "userIdentity": {"type": "IAMUser"},
        "eventType": "AwsApiCall"
    })));
    assert!(!p.matches(&json!({"userIdentity": {"type": "Root"}})));
}

#[test]
fn cis_iam_policy_changes_parse_without_spaces_or_quotes() {
    let p = pattern("{($.eventName=DeleteGroupPolicy)||($.eventName=PutUserPolicy)}");
    assert!(p.matches(&json!({"eventName": "DeleteGroupPolicy"})));
    assert!(p.matches(&json!({"eventName": "PutUserPolicy"})));

    assert!(!p.matches(&json!({"eventName": "PutGroupPolicy"})));
    assert!(!p.matches(&json!({"eventName": "deletegrouppolicy"})));
    assert!(!p.matches(&json!({})));
}

#[test]
fn cis_kms_key_deletion_nests_an_or_inside_an_and() {
    let p = pattern(
        "{($.eventSource = kms.amazonaws.com) && \
         (($.eventName=DisableKey)||($.eventName=ScheduleKeyDeletion)) }",
    );
    assert!(p.matches(&json!({"eventSource": "kms.amazonaws.com", "eventName": "DisableKey"})));
    assert!(p.matches(&json!({
        "eventSource": "kms.amazonaws.com",
        "eventName": "ScheduleKeyDeletion"
    })));

    assert!(!p.matches(&json!({"eventSource": "kms.amazonaws.com", "eventName": "EnableKey"})));
    assert!(!p.matches(&json!({"eventSource": "s3.amazonaws.com", "eventName": "DisableKey"})));
    // Dots in a value are literal, not wildcards.
    assert!(!p.matches(&json!({"eventSource": "kmsXamazonawsXcom", "eventName": "DisableKey"})));
    assert!(!p.matches(&json!({"eventName": "DisableKey"})));
}

#[test]
fn cis_v4_unquoted_value_with_a_space_is_one_value() {
    let unquoted =
        pattern("{ ($.eventName = ConsoleLogin) && ($.errorMessage = Failed authentication) }");
    let quoted = pattern(
        r#"{ ($.eventName = ConsoleLogin) && ($.errorMessage = "Failed authentication") }"#,
    );
    assert!(unquoted.equivalent(&quoted));
    assert!(unquoted.matches(&json!({
        "eventName": "ConsoleLogin",
        "errorMessage": "Failed authentication"
    })));
    assert!(!unquoted.matches(&json!({"eventName": "ConsoleLogin", "errorMessage": "Failed"})));
    // A selector after a value is a missing `&&`, not more of the value.
    let e = parse("{ $.a = x $.b = y }").unwrap_err();
    assert_eq!(e.offset, 10, "{e}");
}

#[test]
fn reordered_requoted_and_respaced_patterns_are_equivalent() {
    let a = pattern(r#"{ ($.eventName = CreateTrail) || ($.eventName = "DeleteTrail") }"#);
    let b = pattern(r#"{$.eventName="DeleteTrail"||$.eventName=CreateTrail}"#);
    assert!(a.equivalent(&b));
    assert_eq!(a.canonical(), b.canonical());
    assert_eq!(
        a.canonical(),
        r#"{ $.eventName = "CreateTrail" || $.eventName = "DeleteTrail" }"#
    );
}

#[test]
fn nested_groups_of_the_same_operator_are_flattened() {
    assert!(equivalent(
        "{ $.a = x && ($.b = y && ($.c = z)) }",
        "{ (($.c = z && $.a = x)) && $.b = y }"
    ));
    assert!(equivalent(
        "{ $.a = x || ($.b = y || $.c = z) }",
        "{ ($.c = z || $.b = y) || $.a = x }"
    ));
    assert_eq!(
        pattern("{ $.a = x && ($.b = y && $.c = z) }").canonical(),
        r#"{ $.a = "x" && $.b = "y" && $.c = "z" }"#
    );
}

#[test]
fn duplicate_operands_are_removed() {
    assert!(equivalent(
        "{ $.a = x || $.a = \"x\" || ($.a = x) }",
        "{ $.a = x }"
    ));
    assert!(equivalent(
        "{ $.c = 1 && (($.a = x && $.b = y) || ($.b = y && $.a = x)) }",
        "{ $.a = x && $.b = y && $.c = 1 }"
    ));
}

#[test]
fn numbers_are_compared_by_value_in_canonical_form() {
    assert!(equivalent("{ $.bytes > 1.0 }", "{ $.bytes > 1 }"));
    assert!(equivalent("{ $.ratio = 1.50 }", "{ $.ratio = +1.5 }"));
    assert!(equivalent("{ $.delta >= -0 }", "{ $.delta >= 0.000 }"));
    assert_eq!(
        pattern("{ $.bytes>1000.00 }").canonical(),
        "{ $.bytes > 1000 }"
    );
}

#[test]
fn patterns_differing_in_value_or_operator_are_not_equivalent() {
    let base = "{ ($.eventName = CreateTrail) || ($.eventName = DeleteTrail) }";
    for changed in [
        "{ ($.eventName = CreateTrail) || ($.eventName = StopLogging) }",
        "{ ($.eventName = CreateTrail) || ($.eventName != DeleteTrail) }",
        "{ ($.eventName = CreateTrail) && ($.eventName = DeleteTrail) }",
        "{ ($.eventName = CreateTrail) || ($.eventname = DeleteTrail) }",
        "{ ($.eventName = CreateTrail) || ($.eventName = deletetrail) }",
        "{ ($.eventName = CreateTrail) || ($.eventName = DeleteTrail*) }",
        "{ $.eventName = CreateTrail }",
    ] {
        assert!(!equivalent(base, changed), "{changed}");
    }
    assert!(!equivalent("{ $.bytes > 1000 }", "{ $.bytes >= 1000 }"));
    assert!(!equivalent("{ $.bytes > 1000 }", "{ $.bytes > 1001 }"));
    assert!(!equivalent("{ $.a NOT EXISTS }", "{ $.a IS NULL }"));
    // A quoted "5" is a string, an unquoted 5 a number: they match differently.
    assert!(!equivalent(r#"{ $.a = "5" }"#, "{ $.a = 5 }"));
}

#[test]
fn canonical_form_parses_back_to_itself() {
    let texts = [
        r#"{ ($.errorCode = "*UnauthorizedOperation") || ($.errorCode = "AccessDenied*") }"#,
        r#"{ $.a = "say \"hi\" \\o/" && $.b[2].c IS NULL || $.d <= -1.25 }"#,
        "{ $.x NOT EXISTS || ($.y IS TRUE && ($.z IS FALSE || $.w != 3)) }",
    ];
    for text in texts {
        let canonical = pattern(text).canonical();
        assert_eq!(pattern(&canonical).canonical(), canonical, "for {text}");
        assert!(pattern(&canonical).equivalent(&pattern(text)));
    }
}

#[test]
fn and_binds_tighter_than_or() {
    let p = pattern("{ $.a = 1 || $.b = 2 && $.c = 3 }");
    // Read as `(a || b) && c`, an event with only `a` would not match.
    assert!(p.matches(&json!({"a": 1})));
    assert!(!p.matches(&json!({"b": 2})));
    assert!(p.matches(&json!({"b": 2, "c": 3})));
    assert!(!p.matches(&json!({"c": 3})));

    assert!(equivalent(
        "{ $.a = 1 || $.b = 2 && $.c = 3 }",
        "{ $.a = 1 || ($.b = 2 && $.c = 3) }"
    ));
    assert!(!equivalent(
        "{ $.a = 1 || $.b = 2 && $.c = 3 }",
        "{ ($.a = 1 || $.b = 2) && $.c = 3 }"
    ));
}

#[test]
fn numeric_comparisons_need_a_numeric_field() {
    let p = pattern("{ $.bytes > 1000 }");
    assert!(p.matches(&json!({"bytes": 1500})));
    assert!(p.matches(&json!({"bytes": 1000.5})));
    assert!(p.matches(&json!({"bytes": "2000"})));
    assert!(!p.matches(&json!({"bytes": 1000})));
    assert!(!p.matches(&json!({"bytes": 999})));
    assert!(!p.matches(&json!({"bytes": "lots"})));
    assert!(!p.matches(&json!({"bytes": true})));
    assert!(!p.matches(&json!({})));

    let p = pattern("{ $.latency <= -0.5 }");
    assert!(p.matches(&json!({"latency": -1})));
    assert!(p.matches(&json!({"latency": -0.5})));
    assert!(!p.matches(&json!({"latency": 0})));

    let p = pattern("{ $.status = 200 }");
    assert!(p.matches(&json!({"status": 200})));
    assert!(p.matches(&json!({"status": 200.0})));
    assert!(!p.matches(&json!({"status": 404})));

    let p = pattern("{ $.status != 200 }");
    assert!(p.matches(&json!({"status": 404})));
    assert!(!p.matches(&json!({"status": 200})));
    assert!(!p.matches(&json!({})));
}

#[test]
fn string_equality_sees_numbers_and_booleans_as_text() {
    assert!(pattern(r#"{ $.code = "5" }"#).matches(&json!({"code": 5})));
    assert!(pattern("{ $.readOnly = true }").matches(&json!({"readOnly": true})));
    assert!(!pattern("{ $.readOnly = true }").matches(&json!({"readOnly": "TRUE"})));
    assert!(!pattern(r#"{ $.code = "5" }"#).matches(&json!({"code": null})));
}

#[test]
fn wildcards_match_anywhere_in_a_value() {
    let p = pattern(r#"{ $.arn = "arn:aws:iam::*:role/*Admin*" }"#);
    assert!(p.matches(&json!({"arn": "arn:aws:iam::123456789012:role/OrgAdmin"})));
    assert!(p.matches(&json!({"arn": "arn:aws:iam::1:role/AdminRole"})));
    assert!(!p.matches(&json!({"arn": "arn:aws:iam::1:user/Admin"})));

    let any = pattern(r#"{ $.userAgent = "*" }"#);
    assert!(any.matches(&json!({"userAgent": ""})));
    assert!(!any.matches(&json!({})));

    let p = pattern(r#"{ $.sourceIPAddress != 10.0.* }"#);
    assert!(p.matches(&json!({"sourceIPAddress": "192.0.2.1"})));
    assert!(!p.matches(&json!({"sourceIPAddress": "10.0.3.4"})));
}

#[test]
fn quoted_strings_unescape_quotes_and_backslashes() {
    let p = pattern(r#"{ $.message = "say \"hi\" \\o/" }"#);
    assert!(p.matches(&json!({"message": r#"say "hi" \o/"#})));
    assert!(!p.matches(&json!({"message": "say hi"})));
}

#[test]
fn is_null_matches_only_a_present_null() {
    let p = pattern("{ $.errorMessage IS NULL }");
    assert!(p.matches(&json!({"errorMessage": null})));
    assert!(!p.matches(&json!({})));
    assert!(!p.matches(&json!({"errorMessage": "denied"})));

    // A null is present, so it does not satisfy NOT EXISTS.
    let missing = pattern("{ $.errorMessage NOT EXISTS }");
    assert!(missing.matches(&json!({})));
    assert!(!missing.matches(&json!({"errorMessage": null})));
}

#[test]
fn is_true_and_is_false_match_booleans_only() {
    let yes = pattern("{ $.readOnly IS TRUE }");
    let no = pattern("{ $.readOnly IS FALSE }");
    assert!(yes.matches(&json!({"readOnly": true})));
    assert!(!yes.matches(&json!({"readOnly": "true"})));
    assert!(no.matches(&json!({"readOnly": false})));
    assert!(!no.matches(&json!({})));
}

#[test]
fn array_index_selectors_pick_one_element() {
    let p = pattern(r#"{ $.resources[0].ARN = "arn:aws:s3:::audit-*" }"#);
    assert!(p.matches(&json!({"resources": [{"ARN": "arn:aws:s3:::audit-logs"}]})));
    assert!(!p.matches(&json!({"resources": [{"ARN": "x"}, {"ARN": "arn:aws:s3:::audit-logs"}]})));
    assert!(!p.matches(&json!({"resources": []})));
    assert!(!p.matches(&json!({"resources": {"ARN": "arn:aws:s3:::audit-logs"}})));

    let nested = pattern("{ $.grid[1][0] = 7 }");
    assert!(nested.matches(&json!({"grid": [[1], [7, 8]]})));
    assert!(!nested.matches(&json!({"grid": [[7]]})));
}

#[test]
fn events_that_are_not_objects_match_only_missing_fields() {
    let p = pattern("{ $.a NOT EXISTS }");
    assert!(p.matches(&json!("just a string")));
    assert!(p.matches(&json!([1, 2])));
    assert!(!pattern("{ $.a = x }").matches(&json!(null)));
}

#[test]
fn moderately_nested_parentheses_parse() {
    let text = format!("{{ {}$.a = 1{} }}", "(".repeat(50), ")".repeat(50));
    assert!(pattern(&text).matches(&json!({"a": 1})));
}

#[test]
fn malformed_patterns_report_what_and_where() {
    // (pattern, character offset, part of the message)
    let cases: &[(&str, usize, &str)] = &[
        (r#"{ $.a = "abc }"#, 8, "unterminated string"),
        (r#"{ $.a = "abc\"#, 8, "unterminated string"),
        ("{ $.a => 1 }", 6, "unknown operator `=>`"),
        ("{ $.a == 1 }", 6, "unknown operator `==`"),
        ("{ $.a = }", 8, "missing value after `=`"),
        ("{ $.a !=", 8, "missing value after `!=`"),
        ("{ ($.a = 1 }", 11, "expected `)`"),
        ("{ ($.a = 1", 10, "expected `)`"),
        ("{ $.a = 1", 9, "missing closing `}`"),
        ("{ $.a = 1 } extra", 12, "after the closing `}`"),
        ("{ $.a = 1 & $.b = 2 }", 10, "expected `&&`"),
        ("{ $.a = 1 | $.b = 2 }", 10, "expected `||`"),
        ("{ $.a = 1 || }", 13, "expected a selector"),
        ("{ () }", 3, "expected a selector"),
        ("{ }", 2, "empty JSON pattern"),
        ("{ eventName = 1 }", 2, "expected a selector"),
        ("{ $ = 1 }", 2, "must start with `$.`"),
        ("{ $. = 1 }", 4, "expected a field name"),
        ("{ $.a[x] = 1 }", 6, "expected an array index"),
        ("{ $.a[0 = 1 }", 7, "expected `]`"),
        ("{ $.a[99999999999999999999999] = 1 }", 6, "too large"),
        ("{ $.a }", 6, "expected an operator"),
        ("{ $.a IS MAYBE }", 9, "expected `NULL`, `TRUE` or `FALSE`"),
        ("{ $.a NOT }", 10, "expected `EXISTS`"),
        ("{ $.a not exists }", 6, "case-sensitive"),
        ("{ $.a IS null }", 9, "case-sensitive"),
        (r#"{ $.bytes > "1000" }"#, 12, "compares numbers"),
        ("{ $.bytes < lots }", 12, "compares numbers"),
        ("$.eventName = ConsoleLogin", 0, "must be enclosed in `{ }`"),
        ("", 0, "only JSON patterns"),
        ("   ", 3, "only JSON patterns"),
        // Offsets count characters: `é` is two bytes but one character.
        (r#"{ $.a = "é" && $.b ~ 1 }"#, 19, "expected an operator"),
    ];
    for &(text, offset, fragment) in cases {
        match parse(text) {
            Ok(p) => panic!("{text:?} parsed as {}", p.canonical()),
            Err(e) => {
                assert!(e.message.contains(fragment), "{text:?}: {e}");
                assert_eq!(e.offset, offset, "{text:?}: {e}");
            }
        }
    }
}

#[test]
fn error_display_names_the_offset() {
    let e = parse(r#"{ $.a = "abc }"#).unwrap_err();
    assert_eq!(e.to_string(), "unterminated string at character 8");
}

#[test]
fn non_json_patterns_are_rejected_as_unsupported() {
    for text in [
        "[ip, user, username]",
        "ERROR",
        "\"Access Denied\"",
        "ERROR -DEBUG",
    ] {
        let e = parse(text).unwrap_err();
        assert!(e.message.contains("only JSON patterns"), "{text:?}: {e}");
        assert_eq!(e.offset, 0, "{text:?}: {e}");
    }
}

#[test]
fn huge_numbers_are_rejected_not_turned_into_infinity() {
    let text = format!("{{ $.bytes > 1{} }}", "0".repeat(400));
    let e = parse(&text).unwrap_err();
    assert!(e.message.contains("out of range"), "{e}");
    assert_eq!(e.offset, 12);
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    let text = format!(
        "{{ {}$.a = 1{} }}",
        "(".repeat(100_000),
        ")".repeat(100_000)
    );
    let e = parse(&text).unwrap_err();
    assert!(e.message.contains("nested"), "{e}");
}

#[test]
fn every_prefix_and_mangled_variant_of_valid_patterns_parses_or_errs_cleanly() {
    let texts = [
        r#"{ ($.errorCode = "*UnauthorizedOperation") || ($.errorCode = "AccessDenied*") }"#,
        r#"{ $.userIdentity.type = "Root" && $.userIdentity.invokedBy NOT EXISTS }"#,
        "{($.eventSource = kms.amazonaws.com) && (($.eventName=DisableKey)) }",
        r#"{ $.a[0].b >= -1.5 || $.c IS NULL && $.d = "x\"y\\" || $.e = "é*" }"#,
    ];
    let event = json!({"a": [{"b": 0}], "c": null, "d": "x\"y\\"});
    for text in texts {
        let chars: Vec<char> = text.chars().collect();
        for end in 0..=chars.len() {
            let prefix: String = chars.iter().take(end).collect();
            if let Ok(p) = parse(&prefix) {
                let _ = p.matches(&event);
                assert!(parse(&p.canonical()).is_ok(), "{prefix:?}");
            }
            // Drop one character, or duplicate it, at every position.
            let dropped: String = chars
                .iter()
                .enumerate()
                .filter(|&(i, _)| i != end)
                .map(|(_, c)| c)
                .collect();
            let doubled: String = chars
                .iter()
                .enumerate()
                .flat_map(|(i, &c)| std::iter::repeat_n(c, if i == end { 2 } else { 1 }))
                .collect();
            for variant in [dropped, doubled] {
                match parse(&variant) {
                    Ok(p) => {
                        let _ = p.matches(&event);
                        assert!(parse(&p.canonical()).is_ok(), "{variant:?}");
                    }
                    Err(e) => assert!(e.offset <= variant.chars().count(), "{variant:?}: {e}"),
                }
            }
        }
    }
}
