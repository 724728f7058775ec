//! Field names as dotted paths into nested JSON, and the values they reach.
//!
//! `userIdentity.sessionContext.sessionIssuer.userName` walks objects key by
//! key; arrays on the way are traversed, so a path can reach many values
//! (`requestParameters.ipPermissions.items.ipRanges.items.cidrIp`). Flat
//! JSON logs sometimes have keys that contain dots (`http.status`): when a
//! key is missing, the longer dotted key is tried too.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};

use sonic_rs::{JsonContainerTrait, JsonType, JsonValueTrait, Value};

/// How deep array traversal goes inside one field; events are already
/// limited in depth, this bounds the work of a single path.
const MAX_ARRAY_NESTING: usize = 8;

/// Every top-level key some field path starts with gets a slot, so that an
/// event's top-level keys are looked up once per event ([`TopKeys`]) instead
/// of once per rule field. Slots are process-wide: rule sets loaded later
/// share them, and a key keeps its slot for the life of the process.
struct Registry {
    slots: HashMap<String, usize>,
    keys: Vec<String>,
}

static REGISTRY: OnceLock<Mutex<Registry>> = OnceLock::new();
static REGISTERED: AtomicUsize = AtomicUsize::new(0);

fn slot_of(key: &str) -> usize {
    let registry = REGISTRY.get_or_init(|| {
        Mutex::new(Registry {
            slots: HashMap::new(),
            keys: Vec::new(),
        })
    });
    // A panic cannot leave the registry half-updated: both inserts follow the check.
    let mut registry = registry.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(&slot) = registry.slots.get(key) {
        return slot;
    }
    let slot = registry.keys.len();
    registry.keys.push(key.to_owned());
    registry.slots.insert(key.to_owned(), slot);
    REGISTERED.store(registry.keys.len(), Ordering::Release);
    slot
}

/// The registered top-level keys, arranged for matching an event's keys fast.
#[derive(Debug, Default, Clone)]
pub struct TopKeys {
    by_len: Vec<Vec<(Box<[u8]>, usize)>>,
    count: usize,
}

impl TopKeys {
    /// The keys registered so far.
    pub fn current() -> TopKeys {
        let Some(registry) = REGISTRY.get() else {
            return TopKeys::default();
        };
        let registry = registry.lock().unwrap_or_else(PoisonError::into_inner);
        let mut by_len: Vec<Vec<(Box<[u8]>, usize)>> = Vec::new();
        for (slot, key) in registry.keys.iter().enumerate() {
            if by_len.len() <= key.len() {
                by_len.resize_with(key.len() + 1, Vec::new);
            }
            by_len[key.len()].push((key.as_bytes().into(), slot));
        }
        TopKeys {
            by_len,
            count: registry.keys.len(),
        }
    }

    /// Whether keys were registered since this snapshot was taken.
    pub fn is_stale(&self) -> bool {
        REGISTERED.load(Ordering::Acquire) != self.count
    }

    /// The event's values for every registered key, by slot.
    pub fn table<'v>(&self, root: &'v Value) -> Vec<Option<&'v Value>> {
        let mut table = vec![None; self.count];
        if let Some(object) = root.as_object() {
            for (key, value) in object.iter() {
                if let Some(candidates) = self.by_len.get(key.len()) {
                    if let Some((_, slot)) = candidates.iter().find(|(k, _)| **k == *key.as_bytes())
                    {
                        if let Some(entry) = table.get_mut(*slot) {
                            // JSON objects may repeat a key; the first one counts, as in get().
                            entry.get_or_insert(value);
                        }
                    }
                }
            }
        }
        table
    }
}

/// A parsed event with its top-level keys looked up.
#[derive(Debug, Clone, Copy)]
pub struct Doc<'v> {
    root: &'v Value,
    top: Option<&'v [Option<&'v Value>]>,
}

impl<'v> Doc<'v> {
    /// An event whose top-level keys were looked up into `top` (see [`TopKeys::table`]).
    pub fn new(root: &'v Value, top: &'v [Option<&'v Value>]) -> Doc<'v> {
        Doc {
            root,
            top: Some(top),
        }
    }

    /// An event without a table: every lookup scans.
    pub fn plain(root: &'v Value) -> Doc<'v> {
        Doc { root, top: None }
    }

    /// The parsed JSON.
    pub fn root(&self) -> &'v Value {
        self.root
    }

    fn top_level(&self, slot: usize, key: &str) -> Option<&'v Value> {
        match self.top {
            Some(table) if slot < table.len() => table[slot],
            _ => self.root.get(key),
        }
    }
}

/// A dotted field name, split once when rules compile.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FieldPath {
    text: String,
    segments: Vec<String>,
    /// Slots of the first segment, then of the first two, three, ...
    /// segments joined with dots (for keys that contain dots).
    slots: Vec<usize>,
}

impl FieldPath {
    /// The path of `name` (`a.b.c`).
    pub fn new(name: &str) -> FieldPath {
        let segments: Vec<String> = name.split('.').map(str::to_owned).collect();
        let slots = (1..=segments.len())
            .map(|n| slot_of(&segments[..n].join(".")))
            .collect();
        FieldPath {
            text: name.to_owned(),
            segments,
            slots,
        }
    }

    /// The name as written in the rule.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Calls `visit` on every value the path reaches in `doc`, including
    /// nulls, until `visit` returns `true`; returns whether it did.
    pub fn any<'v>(&self, doc: Doc<'v>, visit: &mut dyn FnMut(&'v Value) -> bool) -> bool {
        self.reach(doc, true, visit)
    }

    /// Whether the path reaches anything at all, even `null` or `[]`.
    pub fn exists(&self, doc: Doc<'_>) -> bool {
        self.reach(doc, false, &mut |_| true)
    }

    /// Whether the field is missing or null (an empty array is neither).
    pub fn is_null_or_missing(&self, doc: Doc<'_>) -> bool {
        let mut reached = false;
        let null = self.reach(doc, false, &mut |v| {
            reached = true;
            v.get_type() == JsonType::Null
                || v.as_array().is_some_and(|items| {
                    !items.is_empty() && items.iter().all(|i| i.get_type() == JsonType::Null)
                })
        });
        null || !reached
    }

    /// Walks to the values the path reaches; `flatten` opens arrays at its end.
    fn reach<'v>(
        &self,
        doc: Doc<'v>,
        flatten: bool,
        visit: &mut dyn FnMut(&'v Value) -> bool,
    ) -> bool {
        let Some(first) = self.segments.first() else {
            return false;
        };
        let mut reached = false;
        if let Some(child) = doc.top_level(self.slots[0], first) {
            if self.segments.len() == 1 {
                // No longer dotted key to try instead.
                return walk(child, &[], 0, flatten, visit);
            }
            let hit = walk(child, &self.segments[1..], 0, flatten, &mut |v| {
                reached = true;
                visit(v)
            });
            // Found where the nested path leads: a flat dotted key beside it
            // is not looked for.
            if hit || reached {
                return hit;
            }
        }
        // A top-level key that itself contains dots, such as "http.status",
        // also when an object named like its first part exists ("log" beside
        // "log.level" in ECS-style logs).
        for n in 2..=self.segments.len() {
            let joined = self.segments[..n].join(".");
            if let Some(child) = doc.top_level(self.slots[n - 1], &joined) {
                return walk(child, &self.segments[n..], 0, flatten, visit);
            }
        }
        false
    }

    /// The first string the path reaches.
    pub fn first_text<'v>(&self, doc: Doc<'v>) -> Option<&'v str> {
        let mut found = None;
        self.any(doc, &mut |v| {
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
    flatten: bool,
    visit: &mut dyn FnMut(&'v Value) -> bool,
) -> bool {
    let Some((first, rest)) = segments.split_first() else {
        return if flatten {
            leaf(node, nesting, visit)
        } else {
            visit(node)
        };
    };
    match node.get_type() {
        JsonType::Object => {
            if rest.is_empty() {
                return node
                    .get(first.as_str())
                    .is_some_and(|child| walk(child, rest, nesting, flatten, visit));
            }
            if let Some(child) = node.get(first.as_str()) {
                let mut reached = false;
                let hit = walk(child, rest, nesting, flatten, &mut |v| {
                    reached = true;
                    visit(v)
                });
                if hit || reached {
                    return hit;
                }
            }
            // A key that itself contains dots, such as "http.status".
            let mut joined = first.clone();
            for (i, next) in rest.iter().enumerate() {
                joined.push('.');
                joined.push_str(next);
                if let Some(child) = node.get(joined.as_str()) {
                    return walk(child, &rest[i + 1..], nesting, flatten, visit);
                }
            }
            false
        }
        JsonType::Array if nesting < MAX_ARRAY_NESTING => node.as_array().is_some_and(|items| {
            items
                .iter()
                .any(|item| walk(item, segments, nesting + 1, flatten, visit))
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
        let top = TopKeys::current();
        let table = top.table(&root);
        FieldPath::new(path).any(Doc::new(&root, &table), &mut |v| {
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
    fn the_top_level_table_agrees_with_plain_lookups() {
        let root = event();
        let paths = [
            "userIdentity.type",
            "http.status",
            "tags",
            "n",
            "z",
            "nope",
            "requestParameters.ipPermissions.items.ipv6Ranges.items.cidrIpv6",
        ];
        let compiled: Vec<FieldPath> = paths.iter().map(|p| FieldPath::new(p)).collect();
        // Keys registered after the snapshot fall back to a plain lookup.
        let stale = TopKeys::default();
        let fresh = TopKeys::current();
        for top in [&stale, &fresh] {
            let table = top.table(&root);
            for path in &compiled {
                let mut a = Vec::new();
                let mut b = Vec::new();
                path.any(Doc::new(&root, &table), &mut |v| {
                    a.push(sonic_rs::to_string(v).unwrap());
                    false
                });
                path.any(Doc::plain(&root), &mut |v| {
                    b.push(sonic_rs::to_string(v).unwrap());
                    false
                });
                assert_eq!(a, b, "{path}");
            }
        }
        assert!(!fresh.is_stale() || REGISTERED.load(Ordering::Acquire) > fresh.count);
    }

    #[test]
    fn exists_counts_nulls_and_first_text_finds_strings() {
        let root = event();
        let doc = Doc::plain(&root);
        assert!(FieldPath::new("z").exists(doc));
        assert!(!FieldPath::new("y").exists(doc));
        assert_eq!(
            FieldPath::new("userIdentity.type").first_text(doc),
            Some("AssumedRole")
        );
        assert_eq!(number_of(root.get("n").unwrap()), Some(12.0));
        let empty: Value = sonic_rs::from_str(r#"{"a":[],"b":[null],"c":{"d":[]}}"#).unwrap();
        let doc = Doc::plain(&empty);
        assert!(FieldPath::new("a").exists(doc) && !FieldPath::new("a").is_null_or_missing(doc));
        assert!(FieldPath::new("b").is_null_or_missing(doc));
        assert!(FieldPath::new("c.d").exists(doc) && FieldPath::new("c.e").is_null_or_missing(doc));
    }
}
