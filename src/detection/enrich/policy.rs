//! Policy documents in `requestParameters`, read into `cloudwarden.policy`.
//!
//! IAM, KMS, S3, SQS, SNS, ECR, Secrets Manager and other services take
//! JSON policies as request parameters, and CloudTrail records most of them
//! as strings (S3's bucket policy as an object). [`SOURCES`] is the one table
//! of where they are. Each document found is parsed within bounds (at most
//! [`MAX_DOCUMENT_BYTES`], no deeper than the event depth limit) and its
//! statements are normalized: element names are read case-insensitively,
//! single values become lists, and AWS principals become account ids. From
//! those statements a few facts are derived that single Sigma field matches
//! cannot express, because they relate fields of the same statement (an
//! Allow statement with a wildcard principal and no restricting condition).
//! [`fields_markdown`] documents every field.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use sonic_rs::{JsonContainerTrait, JsonType, JsonValueTrait, Object, Value};
use thiserror::Error;

use crate::detection::event::{self, Limits};

/// Larger documents are not parsed (IAM's own limits are far lower; a key
/// policy is at most 32 KB).
pub const MAX_DOCUMENT_BYTES: usize = 128 * 1024;

/// Where a policy document may be in an event.
#[derive(Debug, Clone, Copy)]
pub struct Source {
    /// Keys from `requestParameters` down to the document.
    pub path: &'static [&'static str],
    /// Read only when this key of `requestParameters` has this value
    /// (SNS's SetTopicAttributes names the attribute it sets).
    pub when: Option<(&'static str, &'static str)>,
    /// Read only in events from this service, for keys whose name is too
    /// common to mean a policy everywhere.
    pub event_source: Option<&'static str>,
    /// The API calls that write it, for the documentation.
    pub calls: &'static str,
}

/// Every place a policy document is read from, in the order they are read.
pub const SOURCES: &[Source] = &[
    Source {
        path: &["policyDocument"],
        when: None,
        event_source: None,
        calls: "IAM PutUserPolicy, PutGroupPolicy, PutRolePolicy, CreatePolicy, CreatePolicyVersion, UpdateAssumeRolePolicy (the trust policy); CloudWatch Logs PutResourcePolicy",
    },
    Source {
        path: &["assumeRolePolicyDocument"],
        when: None,
        event_source: None,
        calls: "IAM CreateRole (the trust policy)",
    },
    Source {
        path: &["policy"],
        when: None,
        event_source: None,
        calls: "KMS PutKeyPolicy, CreateKey; EFS PutFileSystemPolicy; Backup PutBackupVaultAccessPolicy; EventBridge PutPermission; DynamoDB PutResourcePolicy; Glacier SetVaultAccessPolicy; STS session policies (AssumeRole, GetFederationToken)",
    },
    Source {
        path: &["bucketPolicy"],
        when: None,
        event_source: None,
        calls: "S3 PutBucketPolicy (recorded as an object)",
    },
    Source {
        path: &["attributes", "Policy"],
        when: None,
        event_source: None,
        calls: "SQS SetQueueAttributes, CreateQueue; SNS CreateTopic",
    },
    Source {
        path: &["attributeValue"],
        when: Some(("attributeName", "Policy")),
        event_source: Some("sns.amazonaws.com"),
        calls: "SNS SetTopicAttributes",
    },
    Source {
        path: &["policyText"],
        when: None,
        event_source: None,
        calls: "ECR SetRepositoryPolicy, PutRegistryPolicy",
    },
    Source {
        path: &["resourcePolicy"],
        when: None,
        event_source: None,
        calls: "Secrets Manager PutResourcePolicy",
    },
    Source {
        path: &["policyInJson"],
        when: None,
        event_source: None,
        calls: "Glue PutResourcePolicy",
    },
    Source {
        path: &["accessPolicies"],
        when: None,
        event_source: None,
        calls: "OpenSearch CreateDomain, UpdateDomainConfig",
    },
    Source {
        path: &["PutAccessPointPolicyRequest", "Policy"],
        when: None,
        event_source: None,
        calls: "S3 Control PutAccessPointPolicy",
    },
    Source {
        path: &["content"],
        when: None,
        event_source: Some("organizations.amazonaws.com"),
        calls: "Organizations CreatePolicy, UpdatePolicy (service control policies)",
    },
];

/// Condition keys that tie a statement to known accounts, organisations,
/// networks or principals: with one of them, a wildcard principal is not
/// anyone on the internet.
const RESTRICTING_KEYS: &[&str] = &[
    "aws:principalaccount",
    "aws:principalarn",
    "aws:principalorgid",
    "aws:principalorgpaths",
    "aws:principalservicename",
    "aws:sourceaccount",
    "aws:sourcearn",
    "aws:sourceorgid",
    "aws:sourceorgpaths",
    "aws:sourceowner",
    "aws:sourceip",
    "aws:sourcevpc",
    "aws:sourcevpce",
    "aws:vpceaccount",
    "aws:vpceorgid",
    "aws:vpceorgpaths",
    "aws:userid",
    "aws:username",
    "kms:calleraccount",
    "s3:dataaccesspointaccount",
    "s3:dataaccesspointarn",
];

/// Restricting keys whose values name accounts (ids or ARNs holding them).
const ACCOUNT_KEYS: &[&str] = &[
    "aws:principalaccount",
    "aws:principalarn",
    "aws:sourceaccount",
    "aws:sourcearn",
    "aws:sourceowner",
    "aws:vpceaccount",
    "kms:calleraccount",
    "s3:dataaccesspointaccount",
];

/// Why a document could not be read.
#[derive(Debug, Error, PartialEq, Eq)]
enum ReadError {
    #[error("larger than {MAX_DOCUMENT_BYTES} bytes, not parsed")]
    TooLarge,
    #[error("nested deeper than {0} levels, not parsed")]
    TooDeep(usize),
    #[error("invalid JSON at line {line}, column {column}")]
    InvalidJson { line: usize, column: usize },
    #[error("invalid percent-encoding")]
    InvalidEncoding,
    #[error("not a JSON object")]
    NotAnObject,
}

/// One statement, normalized.
#[derive(Debug, Default)]
struct Statement {
    sid: Option<String>,
    effect: Option<String>,
    action: Option<Vec<String>>,
    not_action: Option<Vec<String>>,
    resource: Option<Vec<String>>,
    not_resource: Option<Vec<String>>,
    principal: Option<Vec<String>>,
    not_principal: Option<Vec<String>>,
    /// Account ids among the AWS principals, and in the account conditions
    /// of a statement whose principal is a wildcard.
    accounts: Vec<String>,
    has_condition: bool,
    condition_keys: Vec<String>,
    /// A condition ties the statement to known accounts, networks or principals.
    restricted: bool,
}

impl Statement {
    fn allows(&self) -> bool {
        self.effect
            .as_deref()
            .is_some_and(|e| e.eq_ignore_ascii_case("allow"))
    }

    fn wildcard_principal(&self) -> bool {
        // "Allow" with NotPrincipal allows everyone but the principals named.
        self.principal
            .as_ref()
            .is_some_and(|p| p.iter().any(|p| p == "*"))
            || self.not_principal.is_some()
    }

    fn all_actions(&self) -> bool {
        self.action
            .as_ref()
            .is_some_and(|a| a.iter().any(|a| a == "*" || a == "*:*"))
    }

    fn all_resources(&self) -> bool {
        self.resource
            .as_ref()
            .is_some_and(|r| r.iter().any(|r| r == "*"))
    }
}

/// The `cloudwarden.policy` object for `root`, when its `requestParameters`
/// hold a policy document.
pub fn enrich(root: &Value, limits: &Limits) -> Option<Value> {
    let params = root.get("requestParameters")?;
    // One pass over the parameters' keys: most events name none of the
    // documents' fields, and looking each up on its own costs a scan each.
    let object = params.as_object()?;
    let named = object
        .iter()
        .any(|(key, _)| SOURCES.iter().any(|s| s.path.first() == Some(&key)));
    if !named {
        return None;
    }
    let mut sources = Vec::new();
    let mut statements = Vec::new();
    let mut error = None;
    for source in SOURCES {
        let Some(found) = find(root, params, source) else {
            continue;
        };
        sources.push(path_text(source));
        if let Err(err) = read_document(found, limits, &mut statements) {
            error.get_or_insert_with(|| format!("{}: {err}", path_text(source)));
        }
    }
    if sources.is_empty() {
        return None;
    }
    let own = root.get("recipientAccountId").and_then(|v| v.as_str());
    let caller = root
        .get("userIdentity")
        .and_then(|u| u.get("accountId"))
        .and_then(|v| v.as_str());
    Some(summary(&sources, &statements, error, own, caller))
}

/// `requestParameters.a.b` for the documentation and `source`.
fn path_text(source: &Source) -> String {
    format!("requestParameters.{}", source.path.join("."))
}

/// The document `source` points at in this event, if any.
fn find<'v>(root: &Value, params: &'v Value, source: &Source) -> Option<&'v Value> {
    let (first, rest) = source.path.split_first()?;
    let mut node = params.get(*first)?;
    for key in rest {
        node = node.get(*key)?;
    }
    if let Some((key, value)) = source.when {
        if params.get(key).and_then(|v| v.as_str()) != Some(value) {
            return None;
        }
    }
    if let Some(wanted) = source.event_source {
        if root.get("eventSource").and_then(|v| v.as_str()) != Some(wanted) {
            return None;
        }
    }
    match node.get_type() {
        JsonType::String => {
            // Names and ARNs under the same keys are not documents.
            let text = node.as_str()?.trim_start();
            (text.starts_with('{') || starts_with_encoded_brace(text)).then_some(node)
        }
        JsonType::Object => Some(node),
        _ => None,
    }
}

fn starts_with_encoded_brace(text: &str) -> bool {
    text.get(..3)
        .is_some_and(|prefix| prefix.eq_ignore_ascii_case("%7b"))
}

/// Reads the statements of one document, a JSON string or an object.
fn read_document(
    node: &Value,
    limits: &Limits,
    statements: &mut Vec<Statement>,
) -> Result<(), ReadError> {
    if let Some(text) = node.as_str() {
        let parsed = parse_text(text, limits)?;
        return read_object(&parsed, limits, statements, true);
    }
    read_object(node, limits, statements, true)
}

/// Parses a document's text within the bounds.
fn parse_text(text: &str, limits: &Limits) -> Result<Value, ReadError> {
    if text.len() > MAX_DOCUMENT_BYTES {
        return Err(ReadError::TooLarge);
    }
    // Some records carry the document URL-encoded, as the IAM API received it.
    let decoded;
    let text = if starts_with_encoded_brace(text.trim_start()) {
        decoded = percent_decode(text.trim()).ok_or(ReadError::InvalidEncoding)?;
        decoded.as_str()
    } else {
        text
    };
    if event::exceeds_depth(text.as_bytes(), limits.max_depth) {
        return Err(ReadError::TooDeep(limits.max_depth));
    }
    sonic_rs::from_str(text).map_err(|err| ReadError::InvalidJson {
        line: err.line(),
        column: err.column(),
    })
}

/// `%XX` sequences decoded, and `+` as a space; `None` when the result is
/// not UTF-8 or a sequence is broken.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = text.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// Reads a policy object. Glacier and a few others wrap the document in an
/// object of their own (`{"policy": "..."}`), so one level of wrapping is
/// opened when `unwrap` allows.
fn read_object(
    doc: &Value,
    limits: &Limits,
    statements: &mut Vec<Statement>,
    unwrap: bool,
) -> Result<(), ReadError> {
    if !doc.is_object() {
        return Err(ReadError::NotAnObject);
    }
    if let Some(list) = element(doc, "Statement") {
        match list.as_array() {
            Some(items) => statements.extend(items.iter().filter_map(statement)),
            None => statements.extend(statement(list)),
        }
        return Ok(());
    }
    if unwrap {
        if let Some(inner) = element(doc, "Policy") {
            return match inner.as_str() {
                Some(text) => {
                    // The wrapped text is bounded like any document.
                    let parsed = parse_text(text, limits)?;
                    read_object(&parsed, limits, statements, false)
                }
                None => read_object(inner, limits, statements, false),
            };
        }
    }
    // A document without statements grants nothing.
    Ok(())
}

/// An element of a policy object, whatever the case of its name.
fn element<'v>(object: &'v Value, name: &str) -> Option<&'v Value> {
    object
        .as_object()?
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .map(|(_, value)| value)
}

/// Strings of a value that may be one string or a list of them; numbers
/// are taken as written, because account ids are sometimes unquoted.
fn strings(value: &Value) -> Vec<String> {
    let one = |v: &Value| match v.get_type() {
        JsonType::String => v.as_str().map(|s| s.trim().to_owned()),
        JsonType::Number => v.as_number().map(|n| n.to_string()),
        JsonType::Boolean => v.as_bool().map(|b| b.to_string()),
        _ => None,
    };
    match value.as_array() {
        Some(items) => items.iter().filter_map(one).collect(),
        None => one(value).into_iter().collect(),
    }
}

fn statement(node: &Value) -> Option<Statement> {
    if !node.is_object() {
        return None;
    }
    let list = |name: &str| element(node, name).map(strings);
    let mut accounts = Vec::new();
    let principal = element(node, "Principal").map(|p| principals(p, &mut accounts));
    let mut ignored = Vec::new();
    let not_principal = element(node, "NotPrincipal").map(|p| principals(p, &mut ignored));
    let mut out = Statement {
        sid: element(node, "Sid")
            .and_then(|v| v.as_str())
            .map(str::to_owned),
        effect: element(node, "Effect")
            .and_then(|v| v.as_str())
            .map(|s| s.trim().to_owned()),
        action: list("Action"),
        not_action: list("NotAction"),
        resource: list("Resource"),
        not_resource: list("NotResource"),
        principal,
        not_principal,
        accounts,
        ..Statement::default()
    };
    if let Some(condition) = element(node, "Condition").and_then(|c| c.as_object()) {
        out.has_condition = !condition.is_empty();
        let wildcard = out.wildcard_principal();
        for (operator, keys) in condition.iter() {
            let restricts = restricting_operator(operator);
            let Some(keys) = keys.as_object() else {
                continue;
            };
            for (key, values) in keys.iter() {
                out.condition_keys.push(key.to_owned());
                let key = key.to_ascii_lowercase();
                if !restricts || !RESTRICTING_KEYS.contains(&key.as_str()) {
                    continue;
                }
                out.restricted = true;
                // "*" limited to some accounts by condition names those
                // accounts as surely as a principal would.
                if wildcard && ACCOUNT_KEYS.contains(&key.as_str()) {
                    out.accounts
                        .extend(strings(values).iter().filter_map(|v| account_of(v)));
                }
            }
        }
    }
    Some(out)
}

/// Whether a condition operator limits who matches. Negated operators
/// (`StringNotEquals`) let everyone else in, `...IfExists` and
/// `ForAllValues:` hold when the key is missing, and `Null` only tests presence.
fn restricting_operator(operator: &str) -> bool {
    let lower = operator.to_ascii_lowercase();
    !(lower.contains("not")
        || lower.ends_with("ifexists")
        || lower.starts_with("forallvalues:")
        || lower == "null")
}

/// Normalized principals: `*`, account ids for AWS principals that hold
/// one, and other principals (services, federated providers, canonical
/// users, unique ids) as written. Account ids are also added to `accounts`.
fn principals(node: &Value, accounts: &mut Vec<String>) -> Vec<String> {
    let mut out = Vec::new();
    let mut aws = |value: &str, out: &mut Vec<String>| {
        if value == "*" {
            out.push("*".to_owned());
        } else if let Some(account) = account_of(value) {
            accounts.push(account.clone());
            out.push(account);
        } else {
            out.push(value.to_owned());
        }
    };
    match node.as_object() {
        None => {
            for value in strings(node) {
                aws(&value, &mut out);
            }
        }
        Some(kinds) => {
            for (kind, values) in kinds.iter() {
                for value in strings(values) {
                    if kind.eq_ignore_ascii_case("AWS") {
                        aws(&value, &mut out);
                    } else {
                        out.push(value);
                    }
                }
            }
        }
    }
    out
}

/// The account id a principal or ARN names: a bare 12-digit id, or the
/// account field of an ARN (`arn:aws:iam::111122223333:role/x`).
fn account_of(value: &str) -> Option<String> {
    let is_account = |s: &str| s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit());
    if is_account(value) {
        return Some(value.to_owned());
    }
    let mut parts = value.splitn(6, ':');
    if parts.next() != Some("arn") {
        return None;
    }
    let account = parts.nth(3)?;
    is_account(account).then(|| account.to_owned())
}

/// The `cloudwarden.policy` object.
fn summary(
    sources: &[String],
    statements: &[Statement],
    error: Option<String>,
    own: Option<&str>,
    caller: Option<&str>,
) -> Value {
    let mut out = Object::new();
    out.insert("source", texts(sources));
    let mut list = Vec::with_capacity(statements.len());
    let mut external = BTreeSet::new();
    let mut allowed_actions = BTreeSet::new();
    let (mut public, mut all_actions, mut full_access, mut own_named) =
        (false, false, false, false);
    for s in statements {
        list.push(statement_value(s));
        if !s.allows() {
            continue;
        }
        public |= s.wildcard_principal() && !s.restricted;
        all_actions |= s.all_actions();
        full_access |= s.all_actions() && s.all_resources() && !s.has_condition;
        allowed_actions.extend(s.action.iter().flatten().map(String::as_str));
        for account in &s.accounts {
            if Some(account.as_str()) == own {
                own_named = true;
            } else if Some(account.as_str()) != caller {
                external.insert(account.as_str());
            }
        }
    }
    out.insert("statement", Value::from(list));
    out.insert("public", public);
    out.insert("allows_all_actions", all_actions);
    out.insert("full_access", full_access);
    out.insert("own_account_named", own_named);
    if !allowed_actions.is_empty() {
        out.insert("allowed_actions", texts(allowed_actions));
    }
    out.insert("external_account_count", external.len());
    if !external.is_empty() {
        out.insert("external_accounts", texts(external));
    }
    if let Some(error) = error {
        out.insert("error", error.as_str());
    }
    Value::from(out)
}

fn texts<S: AsRef<str>>(items: impl IntoIterator<Item = S>) -> Value {
    Value::from(
        items
            .into_iter()
            .map(|s| Value::from(s.as_ref()))
            .collect::<Vec<_>>(),
    )
}

fn statement_value(s: &Statement) -> Value {
    let mut out = Object::new();
    if let Some(sid) = &s.sid {
        out.insert("sid", sid.as_str());
    }
    if let Some(effect) = &s.effect {
        out.insert("effect", effect.as_str());
    }
    let lists = [
        ("action", &s.action),
        ("not_action", &s.not_action),
        ("resource", &s.resource),
        ("not_resource", &s.not_resource),
        ("principal", &s.principal),
        ("not_principal", &s.not_principal),
    ];
    for (name, values) in lists {
        if let Some(values) = values {
            out.insert(name, texts(values));
        }
    }
    out.insert("has_condition", s.has_condition);
    if !s.condition_keys.is_empty() {
        out.insert("condition_keys", texts(&s.condition_keys));
    }
    Value::from(out)
}

/// The documentation of `cloudwarden.policy`, with the table of sources.
pub fn fields_markdown() -> String {
    let mut out = String::from(
        "## Fields cloudwarden adds to events\n\n\
Before rules see an event, cloudwarden parses the policy documents in its `requestParameters` \
and adds what they say under a top-level `cloudwarden` object, so that rules match them with plain \
Sigma instead of expressions over JSON text. The record in alerts is left as it was read. \
Documents larger than 128 KiB or nested deeper than the event limit are not parsed (see `error`).\n\n\
Policy documents are read from:\n\n\
| field | written by |\n| --- | --- |\n",
    );
    for source in SOURCES {
        let mut written_by = source.calls.to_owned();
        if let Some((key, value)) = source.when {
            let _ = write!(written_by, " (only when `{key}` is `{value}`)");
        }
        if let Some(service) = source.event_source {
            let _ = write!(written_by, " (only in `{service}` events)");
        }
        let _ = writeln!(out, "| `{}` | {} |", path_text(source), written_by);
    }
    out.push_str(
        "\nA string is taken for a document only when it starts with `{` (or `%7B`, URL-encoded); \
an object that holds no `Statement` but a `Policy` is opened once. When an event holds several \
documents, their statements are read together.\n\n\
| field | type | meaning |\n| --- | --- | --- |\n\
| `cloudwarden.policy.source` | list | The fields the documents were read from, such as `requestParameters.policyDocument`. |\n\
| `cloudwarden.policy.statement` | list of objects | Every statement, normalized: `sid`, `effect` (as written), `action`, `not_action`, `resource`, `not_resource` (lists, as written), `principal` and `not_principal` (lists: `*` for `\"*\"` or `{\"AWS\": \"*\"}`, the 12-digit account id for an AWS account id or an ARN holding one, anything else such as `ec2.amazonaws.com` or a federated provider as written), `has_condition` (boolean) and `condition_keys` (list, as written). A list is absent when its element is. Dotted paths traverse the list: `cloudwarden.policy.statement.principal: ec2.amazonaws.com`. |\n\
| `cloudwarden.policy.public` | boolean | An Allow statement has a wildcard principal (or a `NotPrincipal`) and no condition that restricts who may use it: `aws:PrincipalAccount`, `aws:PrincipalArn`, `aws:PrincipalOrgID`, `aws:PrincipalOrgPaths`, `aws:PrincipalServiceName`, `aws:SourceAccount`, `aws:SourceArn`, `aws:SourceOrgID`, `aws:SourceOrgPaths`, `aws:SourceOwner`, `aws:SourceIp`, `aws:SourceVpc`, `aws:SourceVpce`, `aws:VpceAccount`, `aws:VpceOrgID`, `aws:VpceOrgPaths`, `aws:userid`, `aws:username`, `kms:CallerAccount`, `s3:DataAccessPointAccount`, `s3:DataAccessPointArn`. Such a key restricts only under a positive operator: not under a negated one (`StringNotEquals`), an `...IfExists` one, `ForAllValues:` or `Null`. Deny statements are not weighed. |\n\
| `cloudwarden.policy.external_accounts` | list | Account ids of Allow statements other than the event's `recipientAccountId` and `userIdentity.accountId`: those of AWS principals, and, for a wildcard principal, those in its account conditions (`aws:PrincipalAccount`, `aws:PrincipalArn`, `aws:SourceAccount`, `aws:SourceArn`, `aws:SourceOwner`, `aws:VpceAccount`, `kms:CallerAccount`, `s3:DataAccessPointAccount`). Sorted; absent when there are none, so `cloudwarden.policy.external_accounts\\|exists: true` asks whether there are any. |\n\
| `cloudwarden.policy.external_account_count` | number | How many `external_accounts` there are (0 when none). A rule that clears allow-listed accounts (`cloudwarden.policy.external_accounts\\|expand: '%trusted_accounts%'`) should do so only when the count is 1: Sigma matches a list when any of its items matches. |\n\
| `cloudwarden.policy.own_account_named` | boolean | An Allow statement names the event's own account (`recipientAccountId`) as a principal or in an account condition of a wildcard principal. |\n\
| `cloudwarden.policy.allows_all_actions` | boolean | An Allow statement's `Action` is `*` (or `*:*`), whatever its resource and conditions. `NotAction` does not count. |\n\
| `cloudwarden.policy.full_access` | boolean | An Allow statement allows action `*` on resource `*` without a condition: administrator access. |\n\
| `cloudwarden.policy.allowed_actions` | list | The actions of all Allow statements, as written, sorted; absent when there are none. |\n\
| `cloudwarden.policy.error` | string | Why a document could not be read (invalid JSON, too large, too deep, not an object), prefixed with its field. A document with an error adds no statements. |\n",
    );
    out
}
