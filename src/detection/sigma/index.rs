//! The rule index: which rules an event can possibly match.
//!
//! Compiling a rule tells, for some fields, the exact values one of which
//! an event must have for the rule to match (`eventName: CreateUser` or a
//! list of event names). The index keys rules on such a field, preferring
//! fields with many distinct values across the rule set (usually
//! `eventName`, then `eventSource`). An event looks up its own values and is
//! evaluated only against those rules and the few that no field narrows,
//! so the cost of an event does not grow with rules that cannot match it.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::detection::Required;
use super::field::{Doc, FieldPath, text_of};

/// Fields the index keys on, at most.
const MAX_INDEX_FIELDS: usize = 4;

/// Rules by value, for one field.
type Buckets = HashMap<Vec<u8>, Vec<u32>, foldhash::fast::RandomState>;

/// Rules by the exact values of a few fields.
#[derive(Debug, Default)]
pub struct RuleIndex {
    fields: Vec<(FieldPath, Buckets)>,
    always: Vec<u32>,
    rules: usize,
}

impl RuleIndex {
    /// Builds the index from each rule's required values (see
    /// `Detection::required_values`), for the rules listed in `members`.
    pub fn build(members: &[(u32, Required)]) -> RuleIndex {
        // Prefer the fields with the most distinct required values: they split
        // the rules most finely.
        let mut distinct: BTreeMap<&str, BTreeSet<&[u8]>> = BTreeMap::new();
        for (_, required) in members {
            for (field, values) in required {
                distinct
                    .entry(field.as_str())
                    .or_default()
                    .extend(values.iter().map(Vec::as_slice));
            }
        }
        let mut ranked: Vec<(&str, usize)> = distinct.iter().map(|(f, v)| (*f, v.len())).collect();
        ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        ranked.truncate(MAX_INDEX_FIELDS);
        let mut index = RuleIndex {
            fields: ranked
                .iter()
                .map(|(f, _)| (FieldPath::new(f), HashMap::default()))
                .collect(),
            always: Vec::new(),
            rules: members.len(),
        };
        for (rule, required) in members {
            let slot = index
                .fields
                .iter()
                .position(|(path, _)| required.contains_key(path.as_str()));
            match slot {
                Some(slot) => {
                    let (path, buckets) = &mut index.fields[slot];
                    for value in &required[path.as_str()] {
                        buckets.entry(value.clone()).or_default().push(*rule);
                    }
                }
                None => index.always.push(*rule),
            }
        }
        index
    }

    /// The rules `root` may match, ascending, into `out` (cleared first).
    pub fn candidates(&self, root: Option<Doc<'_>>, out: &mut Vec<u32>, scratch: &mut String) {
        out.clear();
        out.extend_from_slice(&self.always);
        if let Some(root) = root {
            for (path, buckets) in &self.fields {
                path.any(root, &mut |value| {
                    if let Some(text) = text_of(value, scratch) {
                        let mut buf = [0u8; 128];
                        let mut long = Vec::new();
                        let bytes = text.as_bytes();
                        // Short values (event names) fold on the stack; a
                        // rule may also require a long value (an ARN, a
                        // user agent), which folds on the heap.
                        let key: &[u8] = match buf.get_mut(..bytes.len()) {
                            Some(folded) => {
                                folded.copy_from_slice(bytes);
                                folded.make_ascii_lowercase();
                                folded
                            }
                            None => {
                                long.extend_from_slice(bytes);
                                long.make_ascii_lowercase();
                                &long
                            }
                        };
                        if let Some(rules) = buckets.get(key) {
                            out.extend_from_slice(rules);
                        }
                    }
                    false
                });
            }
        }
        out.sort_unstable();
        out.dedup();
    }

    /// Rules that every event is evaluated against.
    pub fn always(&self) -> &[u32] {
        &self.always
    }

    /// The fields keyed on, most selective first.
    pub fn fields(&self) -> impl Iterator<Item = &str> {
        self.fields.iter().map(|(p, _)| p.as_str())
    }

    /// How many rules the index holds.
    pub fn len(&self) -> usize {
        self.rules
    }

    /// Whether the index holds no rules.
    pub fn is_empty(&self) -> bool {
        self.rules == 0
    }
}

#[cfg(test)]
mod tests {
    use sonic_rs::Value;

    use super::*;

    fn req(pairs: &[(&str, &[&str])]) -> BTreeMap<String, BTreeSet<Vec<u8>>> {
        pairs
            .iter()
            .map(|(f, vs)| {
                (
                    (*f).to_owned(),
                    vs.iter()
                        .map(|v| v.to_ascii_lowercase().into_bytes())
                        .collect(),
                )
            })
            .collect()
    }

    #[test]
    fn keys_on_the_most_selective_field_and_keeps_the_rest_always() {
        let members = vec![
            (
                0,
                req(&[
                    ("eventSource", &["iam.amazonaws.com"]),
                    ("eventName", &["CreateUser"]),
                ]),
            ),
            (
                1,
                req(&[
                    ("eventSource", &["iam.amazonaws.com"]),
                    ("eventName", &["DeleteUser", "CreateUser"]),
                ]),
            ),
            (2, req(&[("eventSource", &["s3.amazonaws.com"])])),
            (3, req(&[])),
        ];
        let index = RuleIndex::build(&members);
        assert_eq!(
            index.fields().collect::<Vec<_>>(),
            ["eventName", "eventSource"]
        );
        assert_eq!(index.always(), [3]);
        let event: Value =
            sonic_rs::from_str(r#"{"eventSource":"iam.amazonaws.com","eventName":"createuser"}"#)
                .unwrap();
        let (mut out, mut scratch) = (Vec::new(), String::new());
        index.candidates(Some(Doc::plain(&event)), &mut out, &mut scratch);
        assert_eq!(out, [0, 1, 3]);
        let event: Value =
            sonic_rs::from_str(r#"{"eventSource":"S3.amazonaws.com","eventName":"GetObject"}"#)
                .unwrap();
        index.candidates(Some(Doc::plain(&event)), &mut out, &mut scratch);
        assert_eq!(out, [2, 3]);
        index.candidates(None, &mut out, &mut scratch);
        assert_eq!(out, [3]);
    }
}
