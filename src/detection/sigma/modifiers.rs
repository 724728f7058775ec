//! Value modifiers: `field|contains|all`, `field|re|i`, `field|cidr`, ...
//!
//! A key is split into its field and a modifier chain. Transformation
//! modifiers (contains, base64, windash, ...) rewrite values in the order
//! written; type modifiers (re, cidr, gt, exists, fieldref, time parts)
//! decide how the value is compared. Every modifier of the specification's
//! appendix that applies to JSON logs is known; anything else is refused by
//! name.

use super::matcher::{Cmp, Relation, TimePart};
use super::value::Transform;

/// How the (transformed) values are compared with the field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Wildcard string matching (the default).
    Text,
    /// `re`, with its `i`, `m` and `s` flags.
    Regex {
        /// Case-insensitive.
        i: bool,
        /// `^` and `$` match at line boundaries.
        m: bool,
        /// `.` matches newlines.
        s: bool,
    },
    /// `cidr`.
    Cidr,
    /// `lt`, `lte`, `gt`, `gte`.
    Compare(Cmp),
    /// `exists`.
    Exists,
    /// `fieldref`, comparing with another field of the same event.
    FieldRef(Relation),
    /// `minute`, `hour`, ... optionally followed by a comparison.
    Time(TimePart, Cmp),
}

/// A parsed modifier chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    /// Rewrites applied to each value, in order.
    pub transforms: Vec<Transform>,
    /// How values are compared.
    pub kind: Kind,
    /// `all`: every value must match instead of any.
    pub all: bool,
    /// `cased`: case-sensitive.
    pub cased: bool,
    /// `neq`: the field differs from every value.
    pub neq: bool,
    /// `expand`: `%name%` placeholders are replaced.
    pub expand: bool,
}

impl Chain {
    /// Parses the modifiers after the field name (`["contains", "all"]`).
    pub fn parse(names: &[&str]) -> Result<Chain, String> {
        let mut chain = Chain {
            transforms: Vec::new(),
            kind: Kind::Text,
            all: false,
            cased: false,
            neq: false,
            expand: false,
        };
        let mut relation: Option<Relation> = None;
        let set_kind = |chain: &mut Chain, kind: Kind, name: &str| {
            if chain.kind != Kind::Text {
                return Err(format!(
                    "modifier \"{name}\" cannot be combined with another type modifier (re, cidr, lt/lte/gt/gte, exists, fieldref, time parts)"
                ));
            }
            chain.kind = kind;
            Ok(())
        };
        for name in names {
            let lower = name.to_ascii_lowercase();
            match lower.as_str() {
                "contains" | "startswith" | "endswith" => {
                    let (transform, rel) = match lower.as_str() {
                        "contains" => (Transform::Contains, Relation::Contains),
                        "startswith" => (Transform::StartsWith, Relation::StartsWith),
                        _ => (Transform::EndsWith, Relation::EndsWith),
                    };
                    chain.transforms.push(transform);
                    if relation.replace(rel).is_some() {
                        return Err("use only one of contains, startswith and endswith".to_owned());
                    }
                }
                "base64" => chain.transforms.push(Transform::Base64),
                "base64offset" => chain.transforms.push(Transform::Base64Offset),
                "utf16le" | "wide" => chain.transforms.push(Transform::Utf16Le),
                "utf16be" => chain.transforms.push(Transform::Utf16Be),
                "utf16" => chain.transforms.push(Transform::Utf16),
                "windash" => chain.transforms.push(Transform::Windash),
                "all" => chain.all = true,
                "cased" => chain.cased = true,
                "neq" => chain.neq = true,
                "expand" => chain.expand = true,
                "re" => set_kind(
                    &mut chain,
                    Kind::Regex {
                        i: false,
                        m: false,
                        s: false,
                    },
                    name,
                )?,
                "i" | "m" | "s" | "ignorecase" | "multiline" | "dotall" => match &mut chain.kind {
                    Kind::Regex { i, m, s } => match lower.as_str() {
                        "i" | "ignorecase" => *i = true,
                        "m" | "multiline" => *m = true,
                        _ => *s = true,
                    },
                    _ => {
                        return Err(format!(
                            "modifier \"{name}\" is a flag of re and must follow it"
                        ));
                    }
                },
                "cidr" => set_kind(&mut chain, Kind::Cidr, name)?,
                "lt" | "lte" | "gt" | "gte" => {
                    let cmp = match lower.as_str() {
                        "lt" => Cmp::Lt,
                        "lte" => Cmp::Lte,
                        "gt" => Cmp::Gt,
                        _ => Cmp::Gte,
                    };
                    if let Kind::Time(part, Cmp::Eq) = chain.kind {
                        chain.kind = Kind::Time(part, cmp);
                    } else {
                        set_kind(&mut chain, Kind::Compare(cmp), name)?;
                    }
                }
                "exists" => set_kind(&mut chain, Kind::Exists, name)?,
                "fieldref" => set_kind(&mut chain, Kind::FieldRef(Relation::Equals), name)?,
                "minute" | "hour" | "day" | "week" | "month" | "year" => {
                    let part = match lower.as_str() {
                        "minute" => TimePart::Minute,
                        "hour" => TimePart::Hour,
                        "day" => TimePart::Day,
                        "week" => TimePart::Week,
                        "month" => TimePart::Month,
                        _ => TimePart::Year,
                    };
                    set_kind(&mut chain, Kind::Time(part, Cmp::Eq), name)?;
                }
                "" => return Err("empty modifier (two '|' in a row)".to_owned()),
                _ => return Err(format!("unknown modifier \"{name}\"")),
            }
        }
        // fieldref compares with another field: contains/startswith/endswith
        // choose the relation instead of rewriting the value.
        if let Kind::FieldRef(_) = chain.kind {
            chain.transforms.retain(|t| {
                !matches!(
                    t,
                    Transform::Contains | Transform::StartsWith | Transform::EndsWith
                )
            });
            chain.kind = Kind::FieldRef(relation.unwrap_or(Relation::Equals));
            if !chain.transforms.is_empty() {
                return Err("fieldref cannot be combined with encoding modifiers".to_owned());
            }
        }
        if chain.kind != Kind::Text && !matches!(chain.kind, Kind::FieldRef(_)) {
            if let Some(t) = chain.transforms.first() {
                return Err(format!(
                    "{} cannot be combined with value transformations such as {t:?}",
                    kind_name(chain.kind)
                ));
            }
        }
        if chain.neq && matches!(chain.kind, Kind::Exists) {
            return Err("neq cannot be combined with exists (use exists: false)".to_owned());
        }
        Ok(chain)
    }
}

/// The modifier's name as a user writes it.
pub fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Text => "a string match",
        Kind::Regex { .. } => "re",
        Kind::Cidr => "cidr",
        Kind::Compare(_) => "a numeric comparison (lt, lte, gt, gte)",
        Kind::Exists => "exists",
        Kind::FieldRef(_) => "fieldref",
        Kind::Time(..) => "a time part (minute, hour, day, week, month, year)",
    }
}

/// Splits `field|mod1|mod2` into the field (possibly empty, for keywords)
/// and the modifier names.
pub fn split_key(key: &str) -> (&str, Vec<&str>) {
    let mut parts = key.split('|');
    let field = parts.next().unwrap_or_default();
    (field, parts.collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(key: &str) -> Result<Chain, String> {
        let (_, names) = split_key(key);
        Chain::parse(&names)
    }

    #[test]
    fn reads_transformations_in_order_and_type_modifiers() {
        let c = chain("f|wide|base64offset|contains").unwrap();
        assert_eq!(
            c.transforms,
            vec![
                Transform::Utf16Le,
                Transform::Base64Offset,
                Transform::Contains
            ]
        );
        assert_eq!(
            chain("f|re|i|s").unwrap().kind,
            Kind::Regex {
                i: true,
                m: false,
                s: true
            }
        );
        assert_eq!(
            chain("f|hour|gte").unwrap().kind,
            Kind::Time(TimePart::Hour, Cmp::Gte)
        );
        assert_eq!(
            chain("f|fieldref|endswith").unwrap().kind,
            Kind::FieldRef(Relation::EndsWith)
        );
        let c = chain("f|contains|all|cased").unwrap();
        assert!(c.all && c.cased);
        assert!(chain("f|neq").unwrap().neq);
    }

    #[test]
    fn refuses_unknown_and_contradictory_modifiers() {
        assert!(
            chain("f|sounds_like")
                .unwrap_err()
                .contains("unknown modifier \"sounds_like\"")
        );
        assert!(chain("f|i").unwrap_err().contains("flag of re"));
        assert!(chain("f|re|cidr").is_err());
        assert!(chain("f|contains|re").is_err());
        assert!(chain("f|contains|startswith").is_err());
        assert!(chain("f||x").is_err());
        assert_eq!(split_key("|all"), ("", vec!["all"]));
    }
}
