//! Enrichment on its own, and through the engine with Sigma rules.

use std::sync::Arc;

use sonic_rs::{JsonContainerTrait, JsonValueTrait, Value};

use super::policy::{MAX_DOCUMENT_BYTES, SOURCES};
use super::*;
use crate::detection::engine::{Engine, EngineConfig, EventInput};
use crate::detection::event::Format;
use crate::detection::sigma::document::LogSource;
use crate::detection::sigma::ruleset::{LoadOptions, RuleFile, RuleSet};

const OWN: &str = "111122223333";
const OTHER: &str = "444455556666";

/// A CloudTrail record of `event_name` with these request parameters (JSON).
fn record(event_source: &str, event_name: &str, params: &str) -> String {
    format!(
        r#"{{"eventVersion":"1.08","userIdentity":{{"type":"IAMUser","arn":"arn:aws:iam::{OWN}:user/alice","accountId":"{OWN}"}},"eventTime":"2026-11-01T10:00:00Z","eventSource":"{event_source}","eventName":"{event_name}","awsRegion":"us-east-1","eventID":"e-1","recipientAccountId":"{OWN}","requestParameters":{params}}}"#
    )
}

/// `params` with `document` as a JSON string under `key`.
fn with_string(key: &str, document: &str) -> String {
    let mut object = sonic_rs::Object::new();
    object.insert(key, document);
    sonic_rs::to_string(&object).unwrap()
}

fn enriched(raw: &str) -> Value {
    let mut root: Value = sonic_rs::from_str(raw).unwrap();
    apply(&mut root, &Limits::default());
    root
}

fn policy(raw: &str) -> Value {
    enriched(raw)
        .get(ROOT_KEY)
        .and_then(|c| c.get("policy"))
        .cloned()
        .unwrap_or_default()
}

fn strings(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(|v| v.as_array())
        .map(|items| {
            items
                .iter()
                .filter_map(|i| i.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn flag(policy: &Value, name: &str) -> bool {
    policy.get(name).and_then(|v| v.as_bool()).unwrap_or(false)
}

fn kms(document: &str) -> Value {
    policy(&record(
        "kms.amazonaws.com",
        "PutKeyPolicy",
        &with_string("policy", document),
    ))
}

#[test]
fn events_without_policy_documents_are_left_alone() {
    for params in [
        "null",
        "{}",
        r#"{"userName":"bob"}"#,
        r#"{"policy":"default"}"#,
        r#"{"policyArn":"arn:aws:iam::aws:policy/AdministratorAccess"}"#,
        r#"{"content":"{\"Statement\":[]}"}"#,
    ] {
        let root = enriched(&record("iam.amazonaws.com", "X", params));
        assert!(root.get(ROOT_KEY).is_none(), "{params}");
    }
    let root = enriched(r#"{"eventName":"X"}"#);
    assert!(root.get(ROOT_KEY).is_none());
}

#[test]
fn a_foreign_account_next_to_the_own_account_is_external() {
    let p = kms(&format!(
        r#"{{"Version":"2012-10-17","Statement":[
            {{"Sid":"root","Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{OWN}:root"}},"Action":"kms:*","Resource":"*"}},
            {{"Resource":"*","Action":["kms:Decrypt"],"Principal":{{"AWS":["arn:aws:iam::{OTHER}:role/x","{OWN}"]}},"Effect":"Allow"}}]}}"#
    ));
    assert_eq!(strings(p.get("source")), ["requestParameters.policy"]);
    assert_eq!(strings(p.get("external_accounts")), [OTHER]);
    assert_eq!(
        p.get("external_account_count").and_then(|v| v.as_u64()),
        Some(1)
    );
    assert!(flag(&p, "own_account_named"));
    assert!(!flag(&p, "public") && !flag(&p, "allows_all_actions"));
    let statements = p.get("statement").and_then(|s| s.as_array()).unwrap();
    assert_eq!(statements.len(), 2);
    assert_eq!(strings(statements[1].get("principal")), [OTHER, OWN]);
    assert_eq!(
        statements[0].get("sid").and_then(|v| v.as_str()),
        Some("root")
    );
    assert_eq!(strings(p.get("allowed_actions")), ["kms:*", "kms:Decrypt"]);
    assert!(p.get("error").is_none());
}

#[test]
fn only_conditions_that_restrict_who_clear_a_wildcard() {
    let doc = |condition: &str| {
        format!(
            r#"{{"Statement":{{"Effect":"Allow","Principal":"*","Action":"kms:Decrypt","Resource":"*"{condition}}}}}"#
        )
    };
    let public = |condition: &str| flag(&kms(&doc(condition)), "public");
    assert!(public(""));
    assert!(public(
        r#","Condition":{"Bool":{"aws:SecureTransport":"true"}}"#
    ));
    assert!(public(
        r#","Condition":{"StringNotEquals":{"aws:PrincipalOrgID":"o-abc"}}"#
    ));
    assert!(public(
        r#","Condition":{"StringEqualsIfExists":{"aws:SourceAccount":"111122223333"}}"#
    ));
    assert!(public(
        r#","Condition":{"Null":{"aws:PrincipalOrgID":"false"}}"#
    ));
    assert!(!public(
        r#","Condition":{"StringEquals":{"aws:PrincipalOrgID":"o-abc"}}"#
    ));
    assert!(!public(
        r#","Condition":{"IpAddress":{"AWS:SourceIp":["203.0.113.0/24"]}}"#
    ));
    assert!(!public(
        r#","Condition":{"ForAnyValue:StringLike":{"aws:PrincipalOrgPaths":["o-a/r-b/*"]}}"#
    ));
    // Allow with NotPrincipal lets in everyone but the principals named.
    assert!(flag(
        &kms(
            r#"{"Statement":[{"Effect":"Allow","NotPrincipal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"*","Resource":"*"}]}"#
        ),
        "public"
    ));
    // A wildcard Deny opens nothing.
    assert!(!flag(
        &kms(r#"{"Statement":[{"Effect":"Deny","Principal":"*","Action":"*","Resource":"*"}]}"#),
        "public"
    ));
    let p = kms(&doc(
        r#","Condition":{"StringEquals":{"kms:CallerAccount":"444455556666","kms:ViaService":"ec2.us-east-1.amazonaws.com"}}"#,
    ));
    assert!(!flag(&p, "public"));
    // The account the wildcard is limited to is as external as a principal.
    assert_eq!(strings(p.get("external_accounts")), [OTHER]);
    let statement = &p.get("statement").and_then(|s| s.as_array()).unwrap()[0];
    assert_eq!(
        statement.get("has_condition").and_then(|v| v.as_bool()),
        Some(true)
    );
    assert_eq!(
        strings(statement.get("condition_keys")),
        ["kms:CallerAccount", "kms:ViaService"]
    );
}

#[test]
fn bucket_policies_are_read_as_objects_and_strings() {
    let object = r#"{"bucketName":"b","bucketPolicy":{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}]},"host":["b.s3.amazonaws.com"]}"#;
    let p = policy(&record("s3.amazonaws.com", "PutBucketPolicy", object));
    assert!(flag(&p, "public"));
    assert_eq!(strings(p.get("source")), ["requestParameters.bucketPolicy"]);
    let text = with_string(
        "bucketPolicy",
        r#"{"Statement":[{"Effect":"Allow","Principal":{"Service":"logging.s3.amazonaws.com"},"Action":"s3:PutObject","Resource":"*"}]}"#,
    );
    let p = policy(&record("s3.amazonaws.com", "PutBucketPolicy", &text));
    assert!(!flag(&p, "public"));
    let statement = &p.get("statement").and_then(|s| s.as_array()).unwrap()[0];
    assert_eq!(
        strings(statement.get("principal")),
        ["logging.s3.amazonaws.com"]
    );
}

#[test]
fn all_actions_and_full_access() {
    let doc = |statement: &str| {
        let p = policy(&record(
            "iam.amazonaws.com",
            "PutRolePolicy",
            &with_string(
                "policyDocument",
                &format!(r#"{{"Statement":[{statement}]}}"#),
            ),
        ));
        (flag(&p, "allows_all_actions"), flag(&p, "full_access"))
    };
    assert_eq!(
        doc(r#"{"Effect":"Allow","Action":"*","Resource":"*"}"#),
        (true, true)
    );
    assert_eq!(
        doc(r#"{"effect":"Allow","action":["s3:GetObject","*"],"resource":"*"}"#),
        (true, true)
    );
    assert_eq!(
        doc(r#"{"Effect":"Allow","Action":"*","Resource":"arn:aws:s3:::b/*"}"#),
        (true, false)
    );
    assert_eq!(
        doc(
            r#"{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"Bool":{"aws:MultiFactorAuthPresent":"true"}}}"#
        ),
        (true, false)
    );
    assert_eq!(
        doc(r#"{"Effect":"Deny","Action":"*","Resource":"*"}"#),
        (false, false)
    );
    assert_eq!(
        doc(r#"{"Effect":"Allow","NotAction":"*","Resource":"*"}"#),
        (false, false)
    );
    assert_eq!(
        doc(r#"{"Effect":"Allow","Action":"s3:*","Resource":"*"}"#),
        (false, false)
    );
}

#[test]
fn unreadable_documents_say_why() {
    let p = kms("{\"Statement\": [");
    assert!(
        p.get("error")
            .and_then(|v| v.as_str())
            .is_some_and(|e| e.starts_with("requestParameters.policy: invalid JSON")),
        "{p:?}"
    );
    assert_eq!(
        p.get("statement")
            .and_then(|s| s.as_array())
            .map(|s| s.len()),
        Some(0)
    );
    let large = format!(
        r#"{{"Statement":[],"Pad":"{}"}}"#,
        "x".repeat(MAX_DOCUMENT_BYTES)
    );
    let p = kms(&large);
    assert!(
        p.get("error")
            .and_then(|v| v.as_str())
            .is_some_and(|e| e.contains("larger than")),
        "{p:?}"
    );
    let deep = format!(r#"{{"Statement":{}1{}}}"#, "[".repeat(200), "]".repeat(200));
    let p = kms(&deep);
    assert!(
        p.get("error")
            .and_then(|v| v.as_str())
            .is_some_and(|e| e.contains("nested deeper")),
        "{p:?}"
    );
    let p = kms("{} trailing");
    assert!(p.get("error").is_some(), "{p:?}");
}

#[test]
fn documents_behind_names_encodings_and_wrappers() {
    // SNS names the attribute it sets; only its policy is a document.
    let sns = |name: &str| {
        policy(&record(
            "sns.amazonaws.com",
            "SetTopicAttributes",
            &format!(
                r#"{{"topicArn":"arn:aws:sns:us-east-1:{OWN}:t","attributeName":"{name}","attributeValue":"{{\"Statement\":[{{\"Effect\":\"Allow\",\"Principal\":\"*\",\"Action\":\"SNS:Publish\",\"Resource\":\"*\"}}]}}"}}"#
            ),
        ))
    };
    assert!(flag(&sns("Policy"), "public"));
    assert!(sns("DeliveryPolicy").is_null());
    // SQS keeps it among the queue attributes.
    let sqs = policy(&record(
        "sqs.amazonaws.com",
        "SetQueueAttributes",
        &format!(
            r#"{{"queueUrl":"q","attributes":{}}}"#,
            with_string(
                "Policy",
                &format!(
                    r#"{{"Statement":[{{"Effect":"Allow","Principal":{{"AWS":"{OTHER}"}},"Action":"sqs:*","Resource":"*"}}]}}"#
                )
            )
        ),
    ));
    assert_eq!(strings(sqs.get("external_accounts")), [OTHER]);
    // URL-encoded, as some older records carry IAM documents.
    let encoded = "%7B%22Statement%22%3A%5B%7B%22Effect%22%3A%22Allow%22%2C%22Action%22%3A%22*%22%2C%22Resource%22%3A%22*%22%7D%5D%7D";
    let iam = policy(&record(
        "iam.amazonaws.com",
        "PutUserPolicy",
        &with_string("policyDocument", encoded),
    ));
    assert!(flag(&iam, "full_access"), "{iam:?}");
    // Glacier wraps the document in an object of its own.
    let glacier = policy(&record(
        "glacier.amazonaws.com",
        "SetVaultAccessPolicy",
        &format!(
            r#"{{"vaultName":"v","policy":{}}}"#,
            with_string(
                "policy",
                r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"glacier:*","Resource":"*"}]}"#
            )
        ),
    ));
    assert!(flag(&glacier, "public"), "{glacier:?}");
    // Organizations' content is a policy only in its own events.
    let scp = with_string(
        "content",
        r#"{"Statement":[{"Effect":"Deny","Action":"*","Resource":"*"}]}"#,
    );
    assert!(!policy(&record("organizations.amazonaws.com", "CreatePolicy", &scp)).is_null());
    assert!(policy(&record("codecommit.amazonaws.com", "PutFile", &scp)).is_null());
}

#[test]
fn the_callers_own_account_is_not_external_and_a_stale_key_is_replaced() {
    let raw = format!(
        r#"{{"userIdentity":{{"accountId":"{OTHER}"}},"recipientAccountId":"{OWN}","cloudwarden":{{"policy":{{"public":false}}}},"requestParameters":{}}}"#,
        with_string(
            "policy",
            &format!(
                r#"{{"Statement":[{{"Effect":"Allow","Principal":{{"AWS":["arn:aws:iam::{OTHER}:root","*"]}},"Action":"kms:*","Resource":"*"}}]}}"#
            )
        )
    );
    let p = policy(&raw);
    assert!(p.get("external_accounts").is_none(), "{p:?}");
    assert!(!flag(&p, "own_account_named"));
    assert!(flag(&p, "public"));
}

#[test]
fn every_source_is_documented() {
    let markdown = fields_markdown();
    for source in SOURCES {
        assert!(markdown.contains(&format!("`requestParameters.{}`", source.path.join("."))));
    }
}

/// A rule over the enriched fields, as users would write one.
const RULE: &str = r"title: Key policy opened
id: key-policy-opened
logsource: {product: aws, service: cloudtrail}
detection:
  selection:
    eventName: PutKeyPolicy
  public:
    cloudwarden.policy.public: true
  external:
    cloudwarden.policy.external_accounts|exists: true
  trusted:
    cloudwarden.policy.external_accounts|expand: '%trusted_accounts%'
    cloudwarden.policy.external_account_count: 1
  allow_statement:
    cloudwarden.policy.statement.effect: allow
  condition: selection and allow_statement and (public or (external and not trusted))
level: high
tags: [attack.exfiltration]
";

fn engine(trusted: &[&str]) -> Engine {
    let files = [RuleFile {
        origin: "r.yml".to_owned(),
        text: RULE.to_owned(),
        builtin: false,
    }];
    let options = LoadOptions {
        placeholders: [(
            "trusted_accounts".to_owned(),
            trusted.iter().map(|s| (*s).to_owned()).collect(),
        )]
        .into_iter()
        .collect(),
        ..LoadOptions::default()
    };
    let set = RuleSet::load(&files, &options);
    assert!(set.errors.is_empty(), "{:?}", set.errors);
    Engine::new(Arc::new(set), EngineConfig::default())
}

fn alerts(engine: &mut Engine, document: &str) -> usize {
    let raw = record(
        "kms.amazonaws.com",
        "PutKeyPolicy",
        &with_string("policy", document),
    );
    let logsource = LogSource::cloudtrail();
    let processed = engine
        .process(&EventInput {
            raw: &raw,
            format: Format::CloudTrail,
            logsource: &logsource,
            source: None,
            origin: None,
            time_hint_ms: None,
            dedup_id: None,
            reread_from: None,
        })
        .unwrap();
    // Alerts carry the record as it was read, without the added fields.
    for alert in &processed.alerts {
        assert!(!alert.to_json_line().contains("\"cloudwarden\":{"));
    }
    processed.alerts.len()
}

#[test]
fn sigma_rules_match_the_added_fields_through_the_engine() {
    let grant = |principals: &str| {
        format!(
            r#"{{"Statement":[{{"Effect":"Allow","Principal":{{"AWS":[{principals}]}},"Action":"kms:Decrypt","Resource":"*"}}]}}"#
        )
    };
    let mut plain = engine(&[]);
    assert_eq!(alerts(&mut plain, &grant(r#""*""#)), 1);
    assert_eq!(alerts(&mut plain, &grant(&format!(r#""{OWN}""#))), 0);
    assert_eq!(
        alerts(
            &mut plain,
            &grant(&format!(r#""{OWN}","arn:aws:iam::{OTHER}:root""#))
        ),
        1
    );
    let mut trusting = engine(&[OTHER]);
    assert_eq!(
        alerts(
            &mut trusting,
            &grant(&format!(r#""{OWN}","arn:aws:iam::{OTHER}:root""#))
        ),
        0
    );
    // With two outside accounts, one allow-listed account does not clear the other.
    assert_eq!(
        alerts(
            &mut trusting,
            &grant(&format!(r#""arn:aws:iam::{OTHER}:root","999988887777""#))
        ),
        1
    );
    // Only Deny statements: no Allow statement, so the rule's selection fails.
    assert_eq!(
        alerts(
            &mut plain,
            r#"{"Statement":[{"Effect":"Deny","Principal":"*","Action":"*","Resource":"*"}]}"#
        ),
        0
    );
}
