//! Detection semantics, rule text in, events in, match or not.

use sonic_rs::Value;

use super::*;
use crate::detection::sigma::yaml::load_documents;

/// Compiles the `detection:` map of `rule` with these placeholders.
fn compile_with(detection: &str, placeholders: &[(&str, &[&str])]) -> Result<Detection, String> {
    let docs = load_documents(detection).map_err(|e| e.to_string())?;
    let node = docs[0].get("detection").expect("detection").clone();
    let conditions = match node.get("condition").map(|c| &c.value) {
        Some(Yaml::Seq(items)) => items.iter().filter_map(|i| i.scalar_text()).collect(),
        Some(_) => vec![
            node.get("condition")
                .and_then(Node::scalar_text)
                .unwrap_or_default(),
        ],
        None => Vec::new(),
    };
    let placeholders = placeholders
        .iter()
        .map(|(k, vs)| {
            (
                (*k).to_owned(),
                vs.iter().map(|v| (*v).to_owned()).collect(),
            )
        })
        .collect();
    Detection::compile(&node, &conditions, &placeholders)
        .map_err(|e| format!("line {}: {}", e.line, e.message))
}

fn compile(detection: &str) -> Detection {
    compile_with(detection, &[]).unwrap_or_else(|e| panic!("{e}"))
}

fn matches(d: &Detection, event: &str) -> bool {
    let root: Value = sonic_rs::from_str(event).unwrap();
    d.matches(
        &EventView {
            root: Some(crate::detection::sigma::field::Doc::plain(&root)),
            raw: event,
        },
        &mut String::new(),
    )
}

const CREATE_USER: &str = r#"{"eventSource":"iam.amazonaws.com","eventName":"CreateUser","userIdentity":{"type":"IAMUser","arn":"arn:aws:iam::111122223333:user/alice","sessionContext":{"sessionIssuer":{"userName":"admin"}}},"sourceIPAddress":"203.0.113.7","userAgent":"aws-cli/2.15 Python/3.11","requestParameters":{"userName":"bob"},"errorCode":null,"responseElements":{"user":{"userName":"bob"}},"tags":["x","Y"],"bytes":1500,"eventTime":"2024-07-31T23:06:24Z"}"#;

#[test]
fn maps_are_and_and_lists_are_or() {
    let d = compile(
        "detection:\n  sel:\n    eventSource: iam.amazonaws.com\n    eventName: [DeleteUser, CreateUser]\n  condition: sel\n",
    );
    assert!(matches(&d, CREATE_USER));
    let d = compile(
        "detection:\n  sel:\n    eventSource: iam.amazonaws.com\n    eventName: DeleteUser\n  condition: sel\n",
    );
    assert!(!matches(&d, CREATE_USER));
    let d = compile(
        "detection:\n  sel:\n    - eventName: DeleteUser\n    - sourceIPAddress: 203.0.113.7\n  condition: sel\n",
    );
    assert!(matches(&d, CREATE_USER));
}

#[test]
fn values_are_case_insensitive_unless_cased() {
    assert!(matches(
        &compile("detection:\n  s: {eventName: createuser}\n  condition: s\n"),
        CREATE_USER
    ));
    assert!(!matches(
        &compile("detection:\n  s: {eventName|cased: createuser}\n  condition: s\n"),
        CREATE_USER
    ));
    assert!(matches(
        &compile("detection:\n  s: {eventName|cased: CreateUser}\n  condition: s\n"),
        CREATE_USER
    ));
}

#[test]
fn nested_fields_arrays_numbers_and_null() {
    let d = compile(
        "detection:\n  s: {userIdentity.sessionContext.sessionIssuer.userName: ADMIN}\n  condition: s\n",
    );
    assert!(matches(&d, CREATE_USER));
    assert!(matches(
        &compile("detection:\n  s: {tags: y}\n  condition: s\n"),
        CREATE_USER
    ));
    assert!(matches(
        &compile("detection:\n  s: {bytes: 1500}\n  condition: s\n"),
        CREATE_USER
    ));
    // null matches a null value and a missing field, not a present one.
    assert!(matches(
        &compile("detection:\n  s: {errorCode: null}\n  condition: s\n"),
        CREATE_USER
    ));
    assert!(matches(
        &compile("detection:\n  s: {errorMessage: null}\n  condition: s\n"),
        CREATE_USER
    ));
    assert!(!matches(
        &compile("detection:\n  s: {eventName: null}\n  condition: s\n"),
        CREATE_USER
    ));
    // An empty string is not a missing field.
    assert!(!matches(
        &compile("detection:\n  s: {errorMessage: ''}\n  condition: s\n"),
        CREATE_USER
    ));
}

#[test]
fn wildcards_and_escapes() {
    assert!(matches(
        &compile("detection:\n  s: {userAgent: 'aws-cli/*'}\n  condition: s\n"),
        CREATE_USER
    ));
    assert!(matches(
        &compile("detection:\n  s: {eventName: 'Create?ser'}\n  condition: s\n"),
        CREATE_USER
    ));
    assert!(!matches(
        &compile("detection:\n  s: {eventName: 'Create\\?ser'}\n  condition: s\n"),
        CREATE_USER
    ));
    let star = r#"{"p":"a*b"}"#;
    let d = compile("detection:\n  s: {p: 'a\\*b'}\n  condition: s\n");
    assert!(matches(&d, star) && !matches(&d, r#"{"p":"axxb"}"#));
}

#[test]
fn string_modifiers() {
    let m = |d: &str| matches(&compile(d), CREATE_USER);
    assert!(m(
        "detection:\n  s: {userAgent|contains: PYTHON}\n  condition: s\n"
    ));
    assert!(m(
        "detection:\n  s: {userAgent|startswith: aws-cli}\n  condition: s\n"
    ));
    assert!(m(
        "detection:\n  s: {userAgent|endswith: '3.11'}\n  condition: s\n"
    ));
    assert!(!m(
        "detection:\n  s: {userAgent|endswith: aws}\n  condition: s\n"
    ));
    assert!(m(
        "detection:\n  s: {userAgent|contains|all: [aws-cli, python]}\n  condition: s\n"
    ));
    assert!(!m(
        "detection:\n  s: {userAgent|contains|all: [aws-cli, boto3]}\n  condition: s\n"
    ));
    assert!(m(
        "detection:\n  s: {userIdentity.arn|re: '^arn:aws:iam::\\d{12}:user/'}\n  condition: s\n"
    ));
    assert!(!m(
        "detection:\n  s: {eventName|re: '^createuser$'}\n  condition: s\n"
    ));
    assert!(m(
        "detection:\n  s: {eventName|re|i: '^createuser$'}\n  condition: s\n"
    ));
    assert!(m(
        "detection:\n  s: {sourceIPAddress|cidr: [10.0.0.0/8, 203.0.113.0/24]}\n  condition: s\n"
    ));
    assert!(!m(
        "detection:\n  s: {sourceIPAddress|cidr: 10.0.0.0/8}\n  condition: s\n"
    ));
    assert!(m(
        "detection:\n  s: {eventName|neq: DeleteUser}\n  condition: s\n"
    ));
    assert!(!m(
        "detection:\n  s: {eventName|neq: [DeleteUser, CreateUser]}\n  condition: s\n"
    ));
    assert!(!m("detection:\n  s: {missing|neq: x}\n  condition: s\n"));
}

#[test]
fn exists_numbers_time_and_fieldref() {
    let m = |d: &str| matches(&compile(d), CREATE_USER);
    assert!(m(
        "detection:\n  s: {requestParameters.userName|exists: true}\n  condition: s\n"
    ));
    assert!(m(
        "detection:\n  s: {errorCode|exists: true}\n  condition: s\n"
    ));
    assert!(m(
        "detection:\n  s: {errorMessage|exists: false}\n  condition: s\n"
    ));
    assert!(m("detection:\n  s: {bytes|gt: 1000}\n  condition: s\n"));
    assert!(!m("detection:\n  s: {bytes|lte: 1000}\n  condition: s\n"));
    assert!(m(
        "detection:\n  s: {eventTime|hour|gte: 22}\n  condition: s\n"
    ));
    assert!(m("detection:\n  s: {eventTime|month: 7}\n  condition: s\n"));
    assert!(m(
        "detection:\n  s: {requestParameters.userName|fieldref: responseElements.user.userName}\n  condition: s\n"
    ));
    assert!(!m(
        "detection:\n  s: {requestParameters.userName|fieldref: userIdentity.arn}\n  condition: s\n"
    ));
    assert!(!m(
        "detection:\n  s: {userIdentity.arn|fieldref|endswith: requestParameters.userName}\n  condition: s\n"
    ));
    let self_service = r#"{"userIdentity":{"arn":"arn:aws:iam::1:user/bob"},"requestParameters":{"userName":"BOB"}}"#;
    assert!(matches(
        &compile(
            "detection:\n  s: {userIdentity.arn|fieldref|endswith: requestParameters.userName}\n  condition: s\n"
        ),
        self_service
    ));
    assert!(m(
        "detection:\n  s: {requestParameters.userName|fieldref|neq: userIdentity.sessionContext.sessionIssuer.userName}\n  condition: s\n"
    ));
}

#[test]
fn encodings() {
    let b64 = r#"{"data":"aGVsbG8gL2Jpbi9iYXNoIC1pIHdvcmxk"}"#;
    assert!(matches(
        &compile("detection:\n  s: {data|base64offset|contains: /bin/bash}\n  condition: s\n"),
        b64
    ));
    assert!(matches(
        &compile("detection:\n  s: {data|base64: 'hello /bin/bash -i world'}\n  condition: s\n"),
        b64
    ));
    assert!(!matches(
        &compile("detection:\n  s: {data|base64: 'hello /bin/bash'}\n  condition: s\n"),
        b64
    ));
    let exact = r#"{"data":"L2Jpbi9iYXNo"}"#;
    assert!(matches(
        &compile("detection:\n  s: {data|base64: /bin/bash}\n  condition: s\n"),
        exact
    ));
    let wide = r#"{"cmd":"cmd.exe \u002Fc whoami"}"#;
    assert!(matches(
        &compile("detection:\n  s: {cmd|windash|contains: ' -c '}\n  condition: s\n"),
        wide
    ));
}

#[test]
fn keywords_search_the_whole_event() {
    let d = compile(
        "detection:\n  keywords:\n    - TruffleHog\n    - 'python/3.11'\n  condition: keywords\n",
    );
    assert!(matches(&d, CREATE_USER));
    let d = compile(
        "detection:\n  keywords:\n    '|all':\n      - CreateUser\n      - bob\n  condition: keywords\n",
    );
    assert!(matches(&d, CREATE_USER));
    let d = compile(
        "detection:\n  keywords:\n    '|all':\n      - CreateUser\n      - carol\n  condition: keywords\n",
    );
    assert!(!matches(&d, CREATE_USER));
    // Keywords work on plain text records too.
    let text = "Jul 31 sshd[1]: Failed password for root";
    assert!(
        compile("detection:\n  k: ['failed password']\n  condition: k\n").matches(
            &EventView {
                root: None,
                raw: text
            },
            &mut String::new()
        )
    );
}

#[test]
fn conditions_with_quantifiers_and_negation() {
    let base = "detection:\n  selection: {eventSource: iam.amazonaws.com}\n  filter_a: {userIdentity.type: AssumedRole}\n  filter_b: {eventName: DeleteUser}\n  _hidden: {eventName: Nothing}\n";
    let with = |cond: &str| {
        matches(
            &compile(&format!("{base}  condition: {cond}\n")),
            CREATE_USER,
        )
    };
    assert!(with("selection and not 1 of filter_*"));
    assert!(!with("all of them"));
    assert!(with("1 of them"));
    assert!(!with("2 of filter*"));
    assert!(with("selection and (filter_a or not filter_b)"));
    assert!(with("[selection and filter_b, selection]"));
}

#[test]
fn placeholders_expand_from_configuration() {
    let rule = "detection:\n  s: {userIdentity.arn|expand: '%admins%'}\n  condition: s\n";
    let d = compile_with(
        rule,
        &[(
            "admins",
            &["arn:aws:iam::*:user/alice", "arn:aws:iam::*:user/carol"],
        )],
    )
    .unwrap();
    assert!(matches(&d, CREATE_USER));
    let none = compile_with(rule, &[("admins", &[])]).unwrap();
    assert!(!matches(&none, CREATE_USER));
    let err = compile_with(rule, &[]).unwrap_err();
    assert!(
        err.contains("%admins%") && err.contains("rules.placeholders"),
        "{err}"
    );
    // Without expand, percent signs are plain text.
    let plain = compile("detection:\n  s: {p: '%admins%'}\n  condition: s\n");
    assert!(matches(&plain, r#"{"p":"%admins%"}"#));
}

#[test]
fn errors_name_the_identifier_and_the_problem() {
    let err = |d: &str| compile_with(d, &[]).unwrap_err();
    assert!(
        err("detection:\n  s: {a: 1}\n  condition: t\n")
            .contains("unknown search identifier \"t\"")
    );
    assert!(
        err("detection:\n  s: {a|wat: 1}\n  condition: s\n").contains("unknown modifier \"wat\"")
    );
    assert!(
        err("detection:\n  s: {a|cidr: 10.0.0.0/33}\n  condition: s\n").contains("invalid network")
    );
    assert!(err("detection:\n  s: {a|re: '('}\n  condition: s\n").contains("regular expression"));
    assert!(err("detection:\n  s: {a|gt: many}\n  condition: s\n").contains("needs a number"));
    assert!(
        err("detection:\n  s: {a|exists: yes please}\n  condition: s\n").contains("true or false")
    );
    assert!(
        err("detection:\n  s: {a|base64: 'x*'}\n  condition: s\n").contains("without wildcards")
    );
    assert!(err("detection:\n  s: {a: []}\n  condition: s\n").contains("empty list"));
    assert!(
        err("detection:\n  s: {a: 1}\n  condition: 1 of x*\n")
            .contains("matches no search identifier")
    );
    assert!(err("detection:\n  s: {a: 1}\n").contains("no condition"));
    let e = err("detection:\n  s: {a: 1}\n  t:\n    b|contains: [x, {c: d}]\n  condition: s\n");
    assert!(e.contains("detection.t") && e.contains("scalars"), "{e}");
}

#[test]
fn required_values_feed_the_index() {
    let d = compile(
        "detection:\n  sel:\n    eventSource: iam.amazonaws.com\n    eventName: [CreateUser, DeleteUser]\n  sel2:\n    eventName|startswith: Put\n  filter: {userIdentity.type: Root}\n  condition: sel and not filter\n",
    );
    let req = d.required_values();
    assert_eq!(req["eventName"].len(), 2);
    assert!(req["eventName"].contains(b"createuser".as_slice()));
    assert!(req.contains_key("eventSource"));
    // An OR keeps only what both branches require.
    let d = compile(
        "detection:\n  a: {eventSource: s3.amazonaws.com, eventName: GetObject}\n  b: {eventSource: iam.amazonaws.com}\n  condition: a or b\n",
    );
    let req = d.required_values();
    assert_eq!(req.keys().collect::<Vec<_>>(), ["eventSource"]);
    assert_eq!(req["eventSource"].len(), 2);
    // Negations and wildcards require nothing.
    assert!(
        compile("detection:\n  a: {eventName: 'Get*'}\n  condition: a\n")
            .required_values()
            .is_empty()
    );
    assert!(
        compile("detection:\n  a: {eventName: X}\n  condition: not a\n")
            .required_values()
            .is_empty()
    );
}
