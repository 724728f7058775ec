//! Compiled value matchers: what a field's value is compared with.
//!
//! A list of values on one field is an OR, and rules often list dozens of
//! event names or user agents. [`TextSet`] compiles such a list once into the
//! cheapest structures that answer "does any of them match": a hash set for
//! exact values, one Aho-Corasick automaton for every `contains`, short
//! prefix and suffix lists, and a regex set for general wildcard patterns.
//! Matching is case-insensitive unless the rule says `cased`.

use std::collections::HashSet;
use std::net::IpAddr;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use ipnet::IpNet;
use regex::bytes::{Regex, RegexBuilder, RegexSet, RegexSetBuilder};
use sonic_rs::Value;

use super::field::{number_of, text_of};
use super::value::{Part, SigmaString};

/// Compiled regexes may use this much memory each; a rule that needs more is refused.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// Exact values beyond this many are looked up in a hash set instead of a list.
const LINEAR_EXACT_MAX: usize = 4;

/// One wildcard pattern, sorted into the shape that can be matched fastest.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Shape {
    Any,
    Exact(Vec<u8>),
    Prefix(Vec<u8>),
    Suffix(Vec<u8>),
    Contains(Vec<u8>),
    General,
}

fn shape(value: &SigmaString) -> Shape {
    let parts = &value.0;
    let lit = |p: &Part| match p {
        Part::Lit(b) => Some(b.clone()),
        _ => None,
    };
    match parts.as_slice() {
        [] => Shape::Exact(Vec::new()),
        [Part::Star] => Shape::Any,
        [Part::Lit(b)] => Shape::Exact(b.clone()),
        [a, Part::Star] => lit(a).map_or(Shape::General, Shape::Prefix),
        [Part::Star, b] => lit(b).map_or(Shape::General, Shape::Suffix),
        [Part::Star, b, Part::Star] => lit(b).map_or(Shape::General, Shape::Contains),
        _ => Shape::General,
    }
}

/// A regex source matching `value` whole, wildcards included.
fn glob_regex(value: &SigmaString, case_insensitive: bool) -> String {
    let utf8 = value.0.iter().all(|p| match p {
        Part::Lit(b) => std::str::from_utf8(b).is_ok(),
        _ => true,
    });
    // Text that is not UTF-8 (after utf16 modifiers) is matched byte by byte.
    let mut out = String::from(if utf8 { "(?s" } else { "(?s-u" });
    out.push_str(if case_insensitive { "i)^" } else { ")^" });
    for part in &value.0 {
        match part {
            Part::Lit(bytes) => match std::str::from_utf8(bytes) {
                Ok(text) if utf8 => out.push_str(&regex::escape(text)),
                _ => {
                    for b in bytes {
                        out.push_str(&format!("\\x{b:02x}"));
                    }
                }
            },
            Part::Star => out.push_str(".*"),
            Part::One => out.push('.'),
            // Placeholders are expanded before matchers are built.
            Part::Placeholder(_) => out.push_str("(?:$.^)"),
        }
    }
    out.push('$');
    out
}

fn is_ascii(value: &SigmaString) -> bool {
    value.0.iter().all(|p| match p {
        Part::Lit(b) => b.is_ascii(),
        _ => true,
    })
}

/// Any of several wildcard patterns, compiled together.
#[derive(Debug, Clone)]
pub struct TextSet {
    case_insensitive: bool,
    any: bool,
    exact: Vec<Vec<u8>>,
    exact_set: HashSet<Vec<u8>, foldhash::fast::RandomState>,
    prefixes: Vec<Vec<u8>>,
    suffixes: Vec<Vec<u8>>,
    contains: Option<AhoCorasick>,
    general: Option<RegexSet>,
}

impl TextSet {
    /// Compiles `values` into one set; `case_insensitive` is Sigma's default.
    pub fn new(values: &[SigmaString], case_insensitive: bool) -> Result<TextSet, String> {
        let mut set = TextSet {
            case_insensitive,
            any: false,
            exact: Vec::new(),
            exact_set: HashSet::default(),
            prefixes: Vec::new(),
            suffixes: Vec::new(),
            contains: None,
            general: None,
        };
        let mut needles = Vec::new();
        let mut general = Vec::new();
        let fold = |b: Vec<u8>| {
            if case_insensitive {
                b.to_ascii_lowercase()
            } else {
                b
            }
        };
        for value in values {
            let value = &value.normalized();
            // Case-insensitive matching of non-ASCII text needs Unicode case
            // folding, which the regex engine does; ASCII is folded by hand.
            let s = if case_insensitive && !is_ascii(value) {
                Shape::General
            } else {
                shape(value)
            };
            match s {
                Shape::Any => set.any = true,
                Shape::Exact(b) => set.exact.push(fold(b)),
                Shape::Prefix(b) => set.prefixes.push(fold(b)),
                Shape::Suffix(b) => set.suffixes.push(fold(b)),
                Shape::Contains(b) => needles.push(b),
                Shape::General => general.push(glob_regex(value, case_insensitive)),
            }
        }
        if set.exact.len() > LINEAR_EXACT_MAX {
            set.exact_set = std::mem::take(&mut set.exact).into_iter().collect();
        }
        if !needles.is_empty() {
            let automaton = AhoCorasickBuilder::new()
                .ascii_case_insensitive(case_insensitive)
                .match_kind(MatchKind::LeftmostFirst)
                .build(&needles)
                .map_err(|e| format!("cannot compile contains values: {e}"))?;
            set.contains = Some(automaton);
        }
        if !general.is_empty() {
            let regexes = RegexSetBuilder::new(&general)
                .size_limit(REGEX_SIZE_LIMIT)
                .build()
                .map_err(|e| format!("cannot compile wildcard values: {e}"))?;
            set.general = Some(regexes);
        }
        Ok(set)
    }

    /// The values, lowercase, when every pattern is an exact value: the
    /// rule index keys on these. `None` when any pattern has wildcards.
    pub fn exact_values(&self) -> Option<Vec<Vec<u8>>> {
        let only_exact = !self.any
            && self.prefixes.is_empty()
            && self.suffixes.is_empty()
            && self.contains.is_none()
            && self.general.is_none();
        only_exact.then(|| {
            self.exact
                .iter()
                .chain(self.exact_set.iter())
                .map(|v| v.to_ascii_lowercase())
                .collect()
        })
    }

    /// Whether any pattern matches `text`.
    pub fn matches(&self, text: &[u8]) -> bool {
        if self.any {
            return true;
        }
        let ci = self.case_insensitive;
        let eq = |a: &[u8], b: &[u8]| {
            if ci {
                a.eq_ignore_ascii_case(b)
            } else {
                a == b
            }
        };
        if self.exact.iter().any(|e| eq(e, text)) {
            return true;
        }
        if !self.exact_set.is_empty() {
            let hit = if ci && text.iter().any(u8::is_ascii_uppercase) {
                // Event values are short: fold them on the stack.
                let mut buf = [0u8; 128];
                match buf.get_mut(..text.len()) {
                    Some(folded) => {
                        folded.copy_from_slice(text);
                        folded.make_ascii_lowercase();
                        self.exact_set.contains(&*folded)
                    }
                    None => self.exact_set.contains(&text.to_ascii_lowercase()),
                }
            } else {
                self.exact_set.contains(text)
            };
            if hit {
                return true;
            }
        }
        if self
            .prefixes
            .iter()
            .any(|p| text.len() >= p.len() && eq(p, &text[..p.len()]))
        {
            return true;
        }
        if self
            .suffixes
            .iter()
            .any(|s| text.len() >= s.len() && eq(s, &text[text.len() - s.len()..]))
        {
            return true;
        }
        if let Some(automaton) = &self.contains {
            if automaton.is_match(text) {
                return true;
            }
        }
        self.general.as_ref().is_some_and(|set| set.is_match(text))
    }
}

/// A numeric comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    /// `lt`.
    Lt,
    /// `lte`.
    Lte,
    /// `gt`.
    Gt,
    /// `gte`.
    Gte,
    /// Equal (a time modifier without a comparison).
    Eq,
}

impl Cmp {
    /// Whether `left <op> right` holds.
    pub fn holds(self, left: f64, right: f64) -> bool {
        match self {
            Cmp::Lt => left < right,
            Cmp::Lte => left <= right,
            Cmp::Gt => left > right,
            Cmp::Gte => left >= right,
            Cmp::Eq => left == right,
        }
    }
}

/// A part of a date, for the time modifiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimePart {
    /// 0–59.
    Minute,
    /// 0–23.
    Hour,
    /// 1–31.
    Day,
    /// ISO week, 1–53.
    Week,
    /// 1–12.
    Month,
    /// The year.
    Year,
}

impl TimePart {
    fn of(self, text: &str) -> Option<f64> {
        let time: jiff::Timestamp = text.trim().parse().ok()?;
        let dt = time.to_zoned(jiff::tz::TimeZone::UTC).datetime();
        let n = match self {
            TimePart::Minute => i64::from(dt.minute()),
            TimePart::Hour => i64::from(dt.hour()),
            TimePart::Day => i64::from(dt.day()),
            TimePart::Week => i64::from(dt.date().iso_week_date().week()),
            TimePart::Month => i64::from(dt.month()),
            TimePart::Year => i64::from(dt.year()),
        };
        Some(n as f64)
    }
}

/// A test of one value a field reaches.
#[derive(Debug, Clone)]
pub enum ValueTest {
    /// Any of these wildcard patterns.
    Text(TextSet),
    /// This regular expression finds a match.
    Regex(Regex),
    /// The value is an IP address inside any of these networks.
    Cidr(Vec<IpNet>),
    /// The value is a number (or numeric string) that compares so.
    Number(Cmp, f64),
    /// The part of the value's date compares so.
    Time(TimePart, Cmp, f64),
}

impl ValueTest {
    /// Compiles a regex for the `re` modifier and its `i`, `m`, `s` flags.
    pub fn regex(pattern: &str, i: bool, m: bool, s: bool) -> Result<ValueTest, String> {
        RegexBuilder::new(pattern)
            .case_insensitive(i)
            .multi_line(m)
            .dot_matches_new_line(s)
            .size_limit(REGEX_SIZE_LIMIT)
            .build()
            .map(ValueTest::Regex)
            .map_err(|e| format!("invalid regular expression: {e}"))
    }

    /// Whether `value` passes; `scratch` is reused for text conversions.
    pub fn matches(&self, value: &Value, scratch: &mut String) -> bool {
        match self {
            ValueTest::Text(set) => {
                text_of(value, scratch).is_some_and(|t| set.matches(t.as_bytes()))
            }
            ValueTest::Regex(re) => {
                text_of(value, scratch).is_some_and(|t| re.is_match(t.as_bytes()))
            }
            ValueTest::Cidr(nets) => text_of(value, scratch)
                .and_then(|t| t.trim().parse::<IpAddr>().ok())
                .is_some_and(|ip| nets.iter().any(|net| net.contains(&ip))),
            ValueTest::Number(cmp, right) => {
                number_of(value).is_some_and(|left| cmp.holds(left, *right))
            }
            ValueTest::Time(part, cmp, right) => text_of(value, scratch)
                .and_then(|t| part.of(t))
                .is_some_and(|left| cmp.holds(left, *right)),
        }
    }
}

/// Text equality for `fieldref` and keywords, honouring case sensitivity.
pub fn text_relation(left: &str, right: &str, mode: Relation, case_insensitive: bool) -> bool {
    let (l, r);
    let (left, right) = if case_insensitive {
        l = left.to_lowercase();
        r = right.to_lowercase();
        (l.as_str(), r.as_str())
    } else {
        (left, right)
    };
    match mode {
        Relation::Equals => left == right,
        Relation::Contains => left.contains(right),
        Relation::StartsWith => left.starts_with(right),
        Relation::EndsWith => left.ends_with(right),
    }
}

/// How a `fieldref` compares the two fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relation {
    /// The values are equal.
    Equals,
    /// The field contains the other field's value.
    Contains,
    /// The field starts with the other field's value.
    StartsWith,
    /// The field ends with the other field's value.
    EndsWith,
}

#[cfg(test)]
mod tests {
    use sonic_rs::JsonContainerTrait;

    use super::*;

    fn set(values: &[&str], ci: bool) -> TextSet {
        let values: Vec<SigmaString> = values
            .iter()
            .map(|v| SigmaString::parse(v, false))
            .collect();
        TextSet::new(&values, ci).unwrap()
    }

    #[test]
    fn each_shape_matches_case_insensitively_by_default() {
        let s = set(&["CreateUser", "Get*", "*Policy", "*Trail*", "a?c*x"], true);
        for yes in [
            "createuser",
            "GETOBJECT",
            "PutUserPolicy",
            "StopTrailLogging",
            "abcdx",
        ] {
            assert!(s.matches(yes.as_bytes()), "{yes}");
        }
        for no in ["CreateUsers", "ListUsers", "PolicyPut", "Trai", "acx"] {
            assert!(!s.matches(no.as_bytes()), "{no}");
        }
    }

    #[test]
    fn many_exact_values_use_the_hash_set_and_still_fold_case() {
        let names: Vec<String> = (0..50).map(|i| format!("Event{i}")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let s = set(&refs, true);
        assert!(s.matches(b"EVENT42") && s.matches(b"event7") && !s.matches(b"Event50"));
        let cased = set(&refs, false);
        assert!(cased.matches(b"Event42") && !cased.matches(b"EVENT42"));
    }

    #[test]
    fn empty_and_star_and_unicode() {
        let empty = set(&[""], true);
        assert!(empty.matches(b"") && !empty.matches(b"x"));
        assert!(set(&["*"], true).matches(b"anything"));
        let unicode = set(&["*ÄRGER*"], true);
        assert!(unicode.matches("großer ärger".as_bytes()));
        let question = set(&["?"], true);
        assert!(question.matches("ä".as_bytes()) && !question.matches(b"ab"));
    }

    #[test]
    fn value_tests_on_json_values() {
        let v: Value =
            sonic_rs::from_str(r#"["10.1.2.3", 42, "2024-07-31T23:06:24Z", "x"]"#).unwrap();
        let items: Vec<&Value> = v.as_array().unwrap().iter().collect();
        let mut scratch = String::new();
        let cidr = ValueTest::Cidr(vec!["10.0.0.0/8".parse().unwrap()]);
        assert!(cidr.matches(items[0], &mut scratch) && !cidr.matches(items[3], &mut scratch));
        assert!(ValueTest::Number(Cmp::Gt, 41.0).matches(items[1], &mut scratch));
        assert!(!ValueTest::Number(Cmp::Gt, 41.0).matches(items[3], &mut scratch));
        assert!(ValueTest::Time(TimePart::Hour, Cmp::Eq, 23.0).matches(items[2], &mut scratch));
        assert!(ValueTest::Time(TimePart::Week, Cmp::Eq, 31.0).matches(items[2], &mut scratch));
        let re = ValueTest::regex("^x$", false, false, false).unwrap();
        assert!(re.matches(items[3], &mut scratch));
        assert!(ValueTest::regex("(", false, false, false).is_err());
    }
}
