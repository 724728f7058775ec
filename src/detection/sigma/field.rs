//! Field names as dotted paths into nested JSON, and the values they reach.
//!
//! `userIdentity.sessionContext.sessionIssuer.userName` walks objects key by
//! key; arrays on the way are traversed, so a path can reach many values
//! (`requestParameters.ipPermissions.items.ipRanges.items.cidrIp`). Flat
//! JSON logs sometimes have keys that contain dots (`http.status`): when a
//! key is missing, the longer dotted key is tried too.

use std::fmt::Write as _;

use sonic_rs::{JsonContainerTrait, JsonType, JsonValueTrait, Value};

/// How deep array traversal goes inside one field; events are already
/// limited in depth, this bounds the work of a single path.
const MAX_ARRAY_NESTING: usize = 8;

/// A dotted field name, split once when rules compile.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FieldPath {
    text: String,
    segments: Vec<String>,
}

impl FieldPath {
    /// The path of `name` (`a.b.c`).
    pub fn new(name: &str) -> FieldPath {
        FieldPath {
            text: name.to_owned(),
            segments: name.split('.').map(str::to_owned).collect(),
        }
    }

    /// The name as written in the rule.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Calls `visit` on every value the path reaches in `root`, including
    /// nulls, until `visit` returns `true`; returns whether it did.
    pub fn any<'v>(&self, root: &'v Value, visit: &mut dyn FnMut(&'v Value) -> bool) -> bool {
        walk(root, &self.segments, 0, visit)
    }

    /// Whether the path reaches anything at all, even `null`.
    pub fn exists(&self, root: &Value) -> bool {
        self.any(root, &mut |_| true)
    }

    /// The first string or scalar the path reaches, as text.
    pub fn first_text<'v>(&self, root: &'v Value) -> Option<&'v str> {
        let mut found = None;
        self.any(root, &mut |v| {
            found = v.as_str();
            found.is_some()
        });
        found
    }
}

impl std::fmt::Display for FieldPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

fn walk<'v>(
    node: &'v Value,
    segments: &[String],
    nesting: usize,
    visit: &mut dyn FnMut(&'v Value) -> bool,
) -> bool {
    let Some((first, rest)) = segments.split_first() else {
        return leaf(node, nesting, visit);
    };
    match node.get_type() {
        JsonType::Object => {
            if let Some(child) = node.get(first.as_str()) {
                return walk(child, rest, nesting, visit);
            }
            // A key that itself contains dots, such as "http.status".
            if rest.is_empty() {
                return false;
            }
            let mut joined = first.clone();
            for (i, next) in rest.iter().enumerate() {
                joined.push('.');
                joined.push_str(next);
                if let Some(child) = node.get(joined.as_str()) {
                    return walk(child, &rest[i + 1..], nesting, visit);
                }
            }
            false
        }
        JsonType::Array if nesting < MAX_ARRAY_NESTING => node.as_array().is_some_and(|items| {
            items
                .iter()
                .any(|item| walk(item, segments, nesting + 1, visit))
        }),
        _ => false,
    }
}

/// Arrays at the end of a path are matched element by element.
fn leaf<'v>(node: &'v Value, nesting: usize, visit: &mut dyn FnMut(&'v Value) -> bool) -> bool {
    match node.as_array() {
        Some(items) if nesting < MAX_ARRAY_NESTING => {
            items.iter().any(|item| leaf(item, nesting + 1, visit))
        }
        _ => visit(node),
    }
}

/// A value's text for string matching: strings as they are, numbers and
/// booleans as JSON writes them, objects as compact JSON; `None` for null.
/// `scratch` holds the text when it has to be made.
pub fn text_of<'a>(value: &'a Value, scratch: &'a mut String) -> Option<&'a str> {
    match value.get_type() {
        JsonType::String => value.as_str(),
        JsonType::Null => None,
        JsonType::Boolean => Some(if value.as_bool() == Some(true) {
            "true"
        } else {
            "false"
        }),
        JsonType::Number => {
            scratch.clear();
            let number = value.as_number()?;
            let _ = write!(scratch, "{number}");
            Some(scratch.as_str())
        }
        JsonType::Object | JsonType::Array => {
            *scratch = sonic_rs::to_string(value).ok()?;
            Some(scratch.as_str())
        }
    }
}

/// A value as a number: JSON numbers, and strings that hold one.
pub fn number_of(value: &Value) -> Option<f64> {
    match value.get_type() {
        JsonType::Number => value.as_f64(),
        JsonType::String => value.as_str()?.trim().parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> Value {
        sonic_rs::from_str(
            r#"{"userIdentity":{"type":"AssumedRole","sessionContext":{"sessionIssuer":{"userName":"admin"}}},
               "requestParameters":{"ipPermissions":{"items":[
                   {"ipRanges":{"items":[{"cidrIp":"10.0.0.0/8"},{"cidrIp":"0.0.0.0/0"}]}},
                   {"ipv6Ranges":{"items":[{"cidrIpv6":"::/0"}]}}]}},
               "tags":["a",["b","c"]],"n":12,"z":null,"http.status":404,"empty":{}}"#,
        )
        .unwrap()
    }

    fn texts(path: &str) -> Vec<String> {
        let root = event();
        let mut out = Vec::new();
        FieldPath::new(path).any(&root, &mut |v| {
            let mut scratch = String::new();
            out.push(text_of(v, &mut scratch).unwrap_or("<null>").to_owned());
            false
        });
        out
    }

    #[test]
    fn walks_objects_and_traverses_arrays() {
        assert_eq!(
            texts("userIdentity.sessionContext.sessionIssuer.userName"),
            ["admin"]
        );
        assert_eq!(
            texts("requestParameters.ipPermissions.items.ipRanges.items.cidrIp"),
            ["10.0.0.0/8", "0.0.0.0/0"]
        );
        assert_eq!(texts("tags"), ["a", "b", "c"]);
        assert_eq!(texts("n"), ["12"]);
        assert_eq!(texts("z"), ["<null>"]);
        assert_eq!(texts("http.status"), ["404"]);
        assert_eq!(texts("empty"), ["{}"]);
        assert!(texts("userIdentity.missing").is_empty());
        assert!(texts("n.deeper").is_empty());
    }

    #[test]
    fn exists_counts_nulls_and_first_text_finds_strings() {
        let root = event();
        assert!(FieldPath::new("z").exists(&root));
        assert!(!FieldPath::new("y").exists(&root));
        assert_eq!(
            FieldPath::new("userIdentity.type").first_text(&root),
            Some("AssumedRole")
        );
        assert_eq!(number_of(root.get("n").unwrap()), Some(12.0));
    }
}
