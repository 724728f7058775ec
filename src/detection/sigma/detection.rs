//! A rule's `detection` section, compiled: search identifiers become field
//! conditions, the condition an expression over them.
//!
//! Lists mean OR and maps mean AND. A list of strings is a keyword search
//! over the whole event text. A field reaching several values (arrays)
//! matches when any of them does; with `all`, each listed value must be
//! matched by some value of the field.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use ipnet::IpNet;
use sonic_rs::{JsonContainerTrait, JsonType, JsonValueTrait, Value};

use super::condition::{self, Cond, OfTarget, Quantity};
use super::field::{Doc, FieldPath, text_of};
use super::matcher::{Relation, TextSet, ValueTest, text_relation};
use super::modifiers::{Chain, Kind, kind_name, split_key};
use super::value::{MAX_VARIANTS, Part, SigmaString};
use super::yaml::{Node, Value as Yaml};

/// Per field, the exact values (lowercase) one of which an event must have.
pub type Required = BTreeMap<String, BTreeSet<Vec<u8>>>;

/// Values for `%name%` placeholders, from configuration.
pub type Placeholders = HashMap<String, Vec<String>>;

/// What a field condition looks at.
#[derive(Debug, Clone)]
pub enum Target {
    /// A field of the event.
    Field(FieldPath),
    /// The whole event text (keywords).
    Raw,
}

/// The test a field condition applies.
#[derive(Debug, Clone)]
pub enum FieldTest {
    /// `exists: true|false`.
    Exists(bool),
    /// The field's values against these tests.
    Values {
        /// The tests; one per listed value under `all`, else usually one.
        tests: Vec<ValueTest>,
        /// Every test must match (the `all` modifier).
        all: bool,
        /// `null` was listed: a missing or null field matches too.
        null: bool,
        /// `neq`: the field exists and no value matches.
        negate: bool,
    },
    /// `fieldref`: compared with other fields of the same event.
    FieldRef {
        /// The fields compared with (any of them, or all under `all`).
        others: Vec<FieldPath>,
        /// How the values relate.
        relation: Relation,
        /// Case-insensitive unless `cased`.
        case_insensitive: bool,
        /// Every listed field must relate (the `all` modifier).
        all: bool,
        /// `neq`: no listed field relates.
        negate: bool,
    },
}

/// One `field|modifiers: values` entry.
#[derive(Debug, Clone)]
pub struct FieldCond {
    /// The field, or the whole event for keywords.
    pub target: Target,
    /// The test.
    pub test: FieldTest,
}

/// A search identifier: an OR of ANDs of field conditions.
#[derive(Debug, Clone)]
pub struct Search {
    /// Alternatives (a list of maps); each is a conjunction.
    pub alternatives: Vec<Vec<FieldCond>>,
}

/// A condition over search identifiers, by index.
#[derive(Debug, Clone)]
pub enum Expr {
    /// The search at this index matches.
    Search(usize),
    /// Negation.
    Not(Box<Expr>),
    /// All hold.
    And(Vec<Expr>),
    /// Any holds.
    Or(Vec<Expr>),
    /// At least this many of these searches match.
    AtLeast(usize, Vec<usize>),
}

/// A compiled detection section.
#[derive(Debug, Clone)]
pub struct Detection {
    /// Search identifiers by index.
    pub searches: Vec<Search>,
    /// Their names, for messages.
    pub names: Vec<String>,
    /// The condition (several conditions are OR-ed).
    pub condition: Expr,
}

/// What an event looks like to the matcher.
#[derive(Debug, Clone, Copy)]
pub struct EventView<'a> {
    /// The parsed JSON, or `None` for a plain-text event.
    pub root: Option<Doc<'a>>,
    /// The event's text, for keyword searches.
    pub raw: &'a str,
}

/// Why a detection section does not compile, and on which line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileError {
    /// The 1-based line of the offending entry.
    pub line: usize,
    /// What is wrong, starting with where (`detection.selection: field|mod: ...`).
    pub message: String,
}

impl std::fmt::Display for CompileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// A message and the line it is about.
type Located = (usize, String);

impl Detection {
    /// Compiles `detection` (the YAML map) with the condition(s) in `conditions`.
    pub fn compile(
        detection: &Node,
        conditions: &[String],
        placeholders: &Placeholders,
    ) -> Result<Detection, CompileError> {
        let fail = |line: usize, message: String| CompileError { line, message };
        let Yaml::Map(entries) = &detection.value else {
            return Err(fail(
                detection.line,
                format!("detection must be a map, found {}", detection.kind()),
            ));
        };
        let mut searches = Vec::new();
        let mut names = Vec::new();
        for (name, node) in entries {
            if name == "condition" || name == "timeframe" {
                continue;
            }
            let search = compile_search(node, placeholders)
                .map_err(|(line, e)| fail(line, format!("detection.{name}: {e}")))?;
            searches.push(search);
            names.push(name.clone());
        }
        let condition_line = detection
            .get("condition")
            .map_or(detection.line, |c| c.line);
        if conditions.is_empty() {
            return Err(fail(
                detection.line,
                "detection has no condition".to_owned(),
            ));
        }
        let mut alternatives = Vec::new();
        for text in conditions {
            let located = |e: String| fail(condition_line, format!("condition \"{text}\": {e}"));
            let cond = condition::parse(text).map_err(located)?;
            alternatives.push(resolve(&cond, &names).map_err(located)?);
        }
        let condition = if alternatives.len() == 1 {
            alternatives.remove(0)
        } else {
            Expr::Or(alternatives)
        };
        Ok(Detection {
            searches,
            names,
            condition,
        })
    }

    /// Whether the event matches.
    pub fn matches(&self, event: &EventView<'_>, scratch: &mut String) -> bool {
        self.eval(&self.condition, event, scratch)
    }

    fn eval(&self, expr: &Expr, event: &EventView<'_>, scratch: &mut String) -> bool {
        match expr {
            Expr::Search(i) => self
                .searches
                .get(*i)
                .is_some_and(|s| search_matches(s, event, scratch)),
            Expr::Not(inner) => !self.eval(inner, event, scratch),
            Expr::And(items) => items.iter().all(|e| self.eval(e, event, scratch)),
            Expr::Or(items) => items.iter().any(|e| self.eval(e, event, scratch)),
            Expr::AtLeast(n, ids) => {
                let mut hits = 0;
                for (seen, i) in ids.iter().enumerate() {
                    if self
                        .searches
                        .get(*i)
                        .is_some_and(|s| search_matches(s, event, scratch))
                    {
                        hits += 1;
                        if hits >= *n {
                            return true;
                        }
                    }
                    // Stop early when the rest cannot reach n.
                    if hits + (ids.len() - seen - 1) < *n {
                        return false;
                    }
                }
                false
            }
        }
    }

    /// For each field, the exact values (lowercase) one of which the event
    /// must have for the rule to match: what the rule index keys on.
    pub fn required_values(&self) -> Required {
        self.required(&self.condition)
    }

    fn required(&self, expr: &Expr) -> Required {
        match expr {
            Expr::Search(i) => self
                .searches
                .get(*i)
                .map(search_required)
                .unwrap_or_default(),
            Expr::Not(_) => BTreeMap::new(),
            Expr::And(items) => items
                .iter()
                .map(|e| self.required(e))
                .fold(BTreeMap::new(), intersect),
            Expr::Or(items) => union_all(items.iter().map(|e| self.required(e))),
            Expr::AtLeast(n, ids) if *n >= ids.len() => ids
                .iter()
                .map(|i| self.required(&Expr::Search(*i)))
                .fold(BTreeMap::new(), intersect),
            Expr::AtLeast(_, ids) => {
                union_all(ids.iter().map(|i| self.required(&Expr::Search(*i))))
            }
        }
    }

    /// The fields this detection reads, for documentation and tests.
    pub fn fields(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for search in &self.searches {
            for cond in search.alternatives.iter().flatten() {
                if let Target::Field(path) = &cond.target {
                    out.insert(path.as_str().to_owned());
                }
                if let FieldTest::FieldRef { others, .. } = &cond.test {
                    out.extend(others.iter().map(|p| p.as_str().to_owned()));
                }
            }
        }
        out
    }
}

/// Constraints that all must hold. When both constrain one field, either
/// set alone is a sound requirement, and the smaller one is kept. Their
/// intersection is not: an array field (`resources.type`) can hold one value
/// of each set, and an empty intersection would hide the rule from every event.
fn intersect(mut acc: Required, next: Required) -> Required {
    for (field, values) in next {
        match acc.get_mut(&field) {
            Some(existing) => {
                if values.len() < existing.len() {
                    *existing = values;
                }
            }
            None => {
                acc.insert(field, values);
            }
        }
    }
    acc
}

/// Constraints of which one holds: only fields constrained in every branch survive.
fn union_all(mut branches: impl Iterator<Item = Required>) -> Required {
    let Some(mut acc) = branches.next() else {
        return BTreeMap::new();
    };
    for branch in branches {
        acc.retain(|field, _| branch.contains_key(field));
        for (field, values) in branch {
            if let Some(existing) = acc.get_mut(&field) {
                existing.extend(values);
            }
        }
    }
    acc
}

fn search_required(search: &Search) -> Required {
    union_all(search.alternatives.iter().map(|conds| {
        conds
            .iter()
            .filter_map(cond_required)
            .fold(BTreeMap::new(), |acc, (field, values)| {
                intersect(acc, BTreeMap::from([(field, values)]))
            })
    }))
}

fn cond_required(cond: &FieldCond) -> Option<(String, BTreeSet<Vec<u8>>)> {
    let Target::Field(path) = &cond.target else {
        return None;
    };
    match &cond.test {
        FieldTest::Values {
            tests,
            all: false,
            null: false,
            negate: false,
        } => {
            let mut values = BTreeSet::new();
            for test in tests {
                let ValueTest::Text(set) = test else {
                    return None;
                };
                values.extend(set.exact_values()?);
            }
            Some((path.as_str().to_owned(), values))
        }
        _ => None,
    }
}

fn search_matches(search: &Search, event: &EventView<'_>, scratch: &mut String) -> bool {
    search
        .alternatives
        .iter()
        .any(|conds| conds.iter().all(|c| cond_matches(c, event, scratch)))
}

/// Calls `visit` with the text of every scalar value under `node` (keys
/// left out) until it returns `true`; nesting is bounded by the event's own
/// depth limit, and by this one as a second guard.
fn any_leaf(
    node: &Value,
    depth: usize,
    scratch: &mut String,
    visit: &mut dyn FnMut(&[u8]) -> bool,
) -> bool {
    const MAX_DEPTH: usize = 256;
    match node.get_type() {
        JsonType::Object => {
            depth < MAX_DEPTH
                && node.as_object().is_some_and(|object| {
                    object
                        .iter()
                        .any(|(_, v)| any_leaf(v, depth + 1, scratch, visit))
                })
        }
        JsonType::Array => {
            depth < MAX_DEPTH
                && node.as_array().is_some_and(|items| {
                    items.iter().any(|v| any_leaf(v, depth + 1, scratch, visit))
                })
        }
        _ => text_of(node, scratch).is_some_and(|text| visit(text.as_bytes())),
    }
}

fn cond_matches(cond: &FieldCond, event: &EventView<'_>, scratch: &mut String) -> bool {
    match &cond.target {
        Target::Raw => match &cond.test {
            FieldTest::Values {
                tests, all, negate, ..
            } => {
                // Keywords search what the event says, not how it is
                // written: in JSON, each value as its text (unescaped, and
                // never the keys); a text line as it is.
                let mut hit = |t: &ValueTest| match event.root {
                    Some(root) => any_leaf(root.root(), 0, scratch, &mut |text| match t {
                        ValueTest::Text(set) => set.matches(text),
                        ValueTest::Regex(re) => re.is_match(text),
                        _ => false,
                    }),
                    None => {
                        let raw = event.raw.as_bytes();
                        match t {
                            ValueTest::Text(set) => set.matches(raw),
                            ValueTest::Regex(re) => re.is_match(raw),
                            _ => false,
                        }
                    }
                };
                let result = if *all {
                    tests.iter().all(&mut hit)
                } else {
                    tests.iter().any(&mut hit)
                };
                result != *negate
            }
            _ => false,
        },
        Target::Field(path) => {
            let root = event.root;
            match &cond.test {
                FieldTest::Exists(want) => root.is_some_and(|r| path.exists(r)) == *want,
                FieldTest::Values {
                    tests,
                    all,
                    null,
                    negate,
                } => {
                    let Some(root) = root else {
                        return *null && !*negate;
                    };
                    if *negate {
                        let mut present = false;
                        let hit = path.any(root, &mut |v| {
                            if v.get_type() != JsonType::Null {
                                present = true;
                            }
                            tests.iter().any(|t| t.matches(v, scratch))
                        });
                        return present && !hit;
                    }
                    if *null && path.is_null_or_missing(root) {
                        return true;
                    }
                    if *all {
                        !tests.is_empty()
                            && tests
                                .iter()
                                .all(|t| path.any(root, &mut |v| t.matches(v, scratch)))
                    } else {
                        path.any(root, &mut |v| tests.iter().any(|t| t.matches(v, scratch)))
                    }
                }
                FieldTest::FieldRef {
                    others,
                    relation,
                    case_insensitive,
                    all,
                    negate,
                } => {
                    let Some(root) = root else { return false };
                    let relates = |other: &FieldPath| {
                        let mut left_scratch = String::new();
                        path.any(root, &mut |left| {
                            let Some(left) = text_of(left, &mut left_scratch) else {
                                return false;
                            };
                            let left = left.to_owned();
                            let mut right_scratch = String::new();
                            other.any(root, &mut |right| {
                                text_of(right, &mut right_scratch).is_some_and(|right| {
                                    text_relation(&left, right, *relation, *case_insensitive)
                                })
                            })
                        })
                    };
                    if *negate {
                        path.exists(root) && !others.iter().any(relates)
                    } else if *all {
                        others.iter().all(relates)
                    } else {
                        others.iter().any(relates)
                    }
                }
            }
        }
    }
}

fn resolve(cond: &Cond, names: &[String]) -> Result<Expr, String> {
    Ok(match cond {
        Cond::Ref(name) => Expr::Search(
            names
                .iter()
                .position(|n| n == name)
                .ok_or_else(|| format!("unknown search identifier \"{name}\""))?,
        ),
        Cond::Not(inner) => Expr::Not(Box::new(resolve(inner, names)?)),
        Cond::And(items) => Expr::And(
            items
                .iter()
                .map(|c| resolve(c, names))
                .collect::<Result<_, _>>()?,
        ),
        Cond::Or(items) => Expr::Or(
            items
                .iter()
                .map(|c| resolve(c, names))
                .collect::<Result<_, _>>()?,
        ),
        Cond::Of(quantity, target) => {
            let ids: Vec<usize> = names
                .iter()
                .enumerate()
                .filter(|(_, n)| match target {
                    OfTarget::Them => !n.starts_with('_'),
                    OfTarget::Pattern(p) => condition::pattern_matches(p, n),
                })
                .map(|(i, _)| i)
                .collect();
            let what = match target {
                OfTarget::Them => "them".to_owned(),
                OfTarget::Pattern(p) => format!("\"{p}\""),
            };
            if ids.is_empty() {
                return Err(format!("{what} matches no search identifier"));
            }
            let n = match quantity {
                Quantity::All => ids.len(),
                Quantity::AtLeast(n) if *n > ids.len() => {
                    return Err(format!(
                        "{n} of {what}: only {} search identifier(s) match",
                        ids.len()
                    ));
                }
                Quantity::AtLeast(n) => *n,
            };
            Expr::AtLeast(n, ids)
        }
    })
}

fn compile_search(node: &Node, placeholders: &Placeholders) -> Result<Search, Located> {
    let at = |line: usize| move |e: String| (line, e);
    let alternatives = match &node.value {
        Yaml::Map(entries) => vec![compile_map(entries, node.line, placeholders)?],
        Yaml::Seq(items) => {
            let mut alternatives = Vec::new();
            let mut keywords = Vec::new();
            for item in items {
                match &item.value {
                    Yaml::Map(entries) => {
                        alternatives.push(compile_map(entries, item.line, placeholders)?)
                    }
                    Yaml::Seq(_) => {
                        return Err((
                            item.line,
                            "a list inside a list is not a valid search".to_owned(),
                        ));
                    }
                    _ => keywords.push(item.clone()),
                }
            }
            if !keywords.is_empty() {
                let node = Node {
                    line: node.line,
                    value: Yaml::Seq(keywords),
                };
                alternatives.push(vec![
                    compile_cond("", &node, placeholders).map_err(at(node.line))?,
                ]);
            }
            alternatives
        }
        Yaml::Null => return Err((node.line, "the search is empty".to_owned())),
        _ => vec![vec![
            compile_cond("", node, placeholders).map_err(at(node.line))?,
        ]],
    };
    Ok(Search { alternatives })
}

fn compile_map(
    entries: &[(String, Node)],
    line: usize,
    placeholders: &Placeholders,
) -> Result<Vec<FieldCond>, Located> {
    if entries.is_empty() {
        return Err((line, "an empty map is not a valid search".to_owned()));
    }
    entries
        .iter()
        .map(|(key, value)| {
            compile_cond(key, value, placeholders).map_err(|e| (value.line, format!("{key}: {e}")))
        })
        .collect()
}

fn compile_cond(key: &str, node: &Node, placeholders: &Placeholders) -> Result<FieldCond, String> {
    let (field, modifiers) = split_key(key);
    let chain = Chain::parse(&modifiers)?;
    let keyword = field.is_empty();
    let target = if keyword {
        Target::Raw
    } else {
        Target::Field(FieldPath::new(field))
    };
    let values: Vec<&Node> = match &node.value {
        Yaml::Seq(items) => items.iter().collect(),
        Yaml::Map(_) => return Err("a value cannot be a map".to_owned()),
        _ => vec![node],
    };
    if values.is_empty() {
        return Err("an empty list matches nothing; remove the entry or give values".to_owned());
    }
    if chain.all && values.len() == 1 && !chain.expand {
        // The specification forbids it: with one value `all` changes nothing,
        // and it is usually a mistaken attempt to name a field twice.
        return Err(
            "all needs a list of values; for one value leave all out, or use a second selection"
                .to_owned(),
        );
    }
    if let Some(nested) = values
        .iter()
        .find(|v| matches!(v.value, Yaml::Seq(_) | Yaml::Map(_)))
    {
        return Err(format!(
            "line {}: values must be scalars, not lists or maps",
            nested.line
        ));
    }
    let test = match chain.kind {
        Kind::Exists => {
            if keyword {
                return Err("exists needs a field".to_owned());
            }
            match values.as_slice() {
                [
                    Node {
                        value: Yaml::Bool(b),
                        ..
                    },
                ] => FieldTest::Exists(*b),
                _ => return Err("exists takes one value, true or false".to_owned()),
            }
        }
        Kind::FieldRef(relation) => {
            if keyword {
                return Err("fieldref needs a field".to_owned());
            }
            let others = values
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(FieldPath::new)
                        .ok_or("fieldref values are field names")
                })
                .collect::<Result<Vec<_>, _>>()?;
            FieldTest::FieldRef {
                others,
                relation,
                case_insensitive: !chain.cased,
                all: chain.all,
                negate: chain.neq,
            }
        }
        _ => values_test(&chain, &values, keyword, placeholders)?,
    };
    Ok(FieldCond { target, test })
}

fn values_test(
    chain: &Chain,
    values: &[&Node],
    keyword: bool,
    placeholders: &Placeholders,
) -> Result<FieldTest, String> {
    let mut null = false;
    // One group of alternatives per listed value: OR inside, AND across under `all`.
    let mut groups: Vec<Vec<ValueTest>> = Vec::new();
    let mut text_groups: Vec<Vec<SigmaString>> = Vec::new();
    for node in values {
        if node.value == Yaml::Null {
            if chain.kind != Kind::Text || !chain.transforms.is_empty() || keyword {
                return Err("null cannot be combined with modifiers or keywords".to_owned());
            }
            null = true;
            continue;
        }
        match chain.kind {
            Kind::Text => {
                let text = node
                    .scalar_text()
                    .ok_or_else(|| format!("unsupported value {}", node.kind()))?;
                let parsed = match node.value {
                    Yaml::Str(_) => SigmaString::parse(&text, chain.expand),
                    _ => SigmaString::literal(text.into_bytes()),
                };
                let mut variants = expand(parsed, chain.expand, placeholders)?;
                for transform in &chain.transforms {
                    let mut next = Vec::new();
                    for v in variants {
                        next.extend(transform.apply(v)?);
                    }
                    if next.len() > MAX_VARIANTS {
                        return Err(format!(
                            "the modifiers expand a value into more than {MAX_VARIANTS} values"
                        ));
                    }
                    variants = next;
                }
                if keyword {
                    variants = variants
                        .into_iter()
                        .map(|v| v.star_first().star_last())
                        .collect();
                }
                text_groups.push(variants);
            }
            Kind::Regex { i, m, s } => {
                if chain.expand {
                    // A placeholder's values are plain values, not regular
                    // expressions: splicing them into one would change its meaning.
                    return Err(
                        "re cannot be combined with expand: write the expression out, \
                                or match the placeholder with expand alone"
                            .to_owned(),
                    );
                }
                let pattern = node.scalar_text().ok_or("re needs a string")?;
                groups.push(vec![ValueTest::regex(&pattern, i, m, s)?]);
            }
            Kind::Cidr => {
                let text = node
                    .scalar_text()
                    .ok_or("cidr needs a network such as 10.0.0.0/8")?;
                let net = parse_network(&text)?;
                groups.push(vec![ValueTest::Cidr(vec![net])]);
            }
            Kind::Compare(cmp) => {
                let n = number(node, kind_name(chain.kind))?;
                groups.push(vec![ValueTest::Number(cmp, n)]);
            }
            Kind::Time(part, cmp) => {
                let n = number(node, kind_name(chain.kind))?;
                groups.push(vec![ValueTest::Time(part, cmp, n)]);
            }
            Kind::Exists | Kind::FieldRef(_) => unreachable_kind()?,
        }
    }
    if keyword && chain.kind != Kind::Text && !matches!(chain.kind, Kind::Regex { .. }) {
        return Err(format!("{} needs a field", kind_name(chain.kind)));
    }
    let case_insensitive = !chain.cased;
    let tests = if chain.all {
        let mut tests = Vec::new();
        for group in text_groups {
            tests.push(ValueTest::Text(TextSet::new(&group, case_insensitive)?));
        }
        for group in groups {
            tests.extend(group);
        }
        tests
    } else {
        let mut tests = Vec::new();
        let all_text: Vec<SigmaString> = text_groups.into_iter().flatten().collect();
        if !all_text.is_empty() {
            tests.push(ValueTest::Text(TextSet::new(&all_text, case_insensitive)?));
        }
        // Several networks on one field are one test.
        let mut nets = Vec::new();
        for test in groups.into_iter().flatten() {
            match test {
                ValueTest::Cidr(n) => nets.extend(n),
                other => tests.push(other),
            }
        }
        if !nets.is_empty() {
            tests.push(ValueTest::Cidr(nets));
        }
        tests
    };
    Ok(FieldTest::Values {
        tests,
        all: chain.all,
        null,
        negate: chain.neq,
    })
}

fn unreachable_kind() -> Result<(), String> {
    Err("internal: exists and fieldref are handled before values".to_owned())
}

fn number(node: &Node, what: &str) -> Result<f64, String> {
    match &node.value {
        Yaml::Int(i, _) => Ok(*i as f64),
        Yaml::Float(text) | Yaml::Str(text) => text
            .trim()
            .parse()
            .map_err(|_| format!("{what} needs a number, got \"{text}\"")),
        _ => Err(format!("{what} needs a number, got {}", node.kind())),
    }
}

fn parse_network(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    text.parse::<IpNet>()
        .or_else(|_| text.parse::<std::net::IpAddr>().map(IpNet::from))
        .map_err(|_| {
            format!("invalid network \"{text}\" (expected CIDR notation such as 10.0.0.0/8)")
        })
}

/// Replaces placeholders with every combination of their configured values.
fn expand(
    value: SigmaString,
    enabled: bool,
    placeholders: &Placeholders,
) -> Result<Vec<SigmaString>, String> {
    if !enabled || value.placeholders().next().is_none() {
        return Ok(vec![value]);
    }
    let mut variants = vec![SigmaString::default()];
    for part in value.0 {
        match part {
            Part::Placeholder(name) => {
                let Some(replacements) = placeholders.get(&name) else {
                    return Err(format!(
                        "placeholder %{name}% has no values: define it under [rules.placeholders] in the configuration"
                    ));
                };
                let mut next = Vec::new();
                for v in &variants {
                    for replacement in replacements {
                        let mut combined = v.clone();
                        combined.0.extend(SigmaString::parse(replacement, false).0);
                        next.push(combined);
                    }
                }
                if next.len() > MAX_VARIANTS {
                    return Err(format!(
                        "placeholder %{name}% expands into more than {MAX_VARIANTS} values"
                    ));
                }
                variants = next;
            }
            other => {
                for v in &mut variants {
                    v.0.push(other.clone());
                }
            }
        }
    }
    Ok(variants)
}

#[cfg(test)]
mod tests;
