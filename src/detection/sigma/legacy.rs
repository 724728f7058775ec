//! The pre-correlation aggregation syntax, still found in older rules:
//! `selection | count() by field > 10` and `selection1 | near selection2`,
//! with `detection.timeframe`. Each is rewritten into what replaced it: a
//! base rule for the selection and a Sigma correlation rule over it. What
//! cannot be rewritten faithfully is refused with the construct named.

use super::document::{Bound, CorrelationDoc, CorrelationType, Meta, RuleDoc};

/// The documents a legacy rule becomes: hidden base rules and one correlation.
#[derive(Debug)]
pub struct Rewritten {
    /// One base rule per selection.
    pub bases: Vec<RuleDoc>,
    /// The correlation, carrying the original rule's id, title and level.
    pub correlation: CorrelationDoc,
}

/// Whether the rule uses the legacy syntax at all.
pub fn is_legacy(rule: &RuleDoc) -> bool {
    rule.conditions.iter().any(|c| c.contains('|')) || rule.timeframe.is_some()
}

/// Rewrites a legacy aggregation rule.
pub fn rewrite(rule: &RuleDoc) -> Result<Rewritten, String> {
    let [condition] = rule.conditions.as_slice() else {
        return Err("an aggregation (|) needs exactly one condition".to_owned());
    };
    let Some((left, right)) = condition.split_once('|') else {
        return Err(
            "detection.timeframe without an aggregation: the old syntax correlated events this condition cannot express one event at a time; write it as a Sigma correlation rule (temporal or event_count)".to_owned(),
        );
    };
    let Some(timeframe) = rule.timeframe else {
        return Err(format!(
            "the aggregation \"{}\" needs detection.timeframe; write it as a Sigma correlation rule with a timespan",
            right.trim()
        ));
    };
    let words: Vec<&str> = right.split_whitespace().collect();
    let base = |suffix: &str, condition: &str| RuleDoc {
        meta: Meta {
            id: format!("{}:{suffix}", rule.meta.id),
            name: None,
            title: format!("{} ({suffix})", rule.meta.title),
            ..rule.meta.clone()
        },
        detection: rule.detection.clone(),
        conditions: vec![condition.trim().to_owned()],
        timeframe: None,
    };
    let correlation =
        |kind, rules: Vec<String>, group_by: Vec<String>, bounds, field| CorrelationDoc {
            meta: rule.meta.clone(),
            kind,
            rules,
            group_by,
            timespan: timeframe,
            bounds,
            field,
            aliases: Vec::new(),
            generate: false,
        };
    match words.first().copied() {
        Some(first) if first.starts_with("count(") => {
            let (field, group, bound) = parse_count(right.trim())?;
            let selection = base("selection", left);
            let kind = if field.is_some() {
                CorrelationType::ValueCount
            } else {
                CorrelationType::EventCount
            };
            let corr = correlation(
                kind,
                vec![selection.meta.id.clone()],
                group.into_iter().collect(),
                vec![bound],
                field,
            );
            Ok(Rewritten {
                bases: vec![selection],
                correlation: corr,
            })
        }
        Some("near") => {
            let operands: Vec<&str> = right
                .trim()
                .trim_start_matches("near")
                .split(" and ")
                .map(str::trim)
                .collect();
            if operands
                .iter()
                .any(|o| o.is_empty() || o.starts_with("not ") || o.contains(' '))
            {
                return Err(format!(
                    "\"{}\": near supports only identifiers joined by and, not negations or groups",
                    right.trim()
                ));
            }
            let mut bases = vec![base("near0", left)];
            for (i, operand) in operands.iter().enumerate() {
                bases.push(base(&format!("near{}", i + 1), operand));
            }
            let rules = bases.iter().map(|b| b.meta.id.clone()).collect();
            Ok(Rewritten {
                bases,
                correlation: correlation(
                    CorrelationType::Temporal,
                    rules,
                    Vec::new(),
                    Vec::new(),
                    None,
                ),
            })
        }
        _ => Err(format!(
            "unknown aggregation \"{}\" (the legacy syntax knew count() and near)",
            right.trim()
        )),
    }
}

/// `count(field) by group > 10` → (field, group, bound).
fn parse_count(text: &str) -> Result<(Option<String>, Option<String>, Bound), String> {
    let bad =
        || format!("cannot read the aggregation \"{text}\" (expected count(field) by group > N)");
    let rest = text.strip_prefix("count(").ok_or_else(bad)?;
    let (field, rest) = rest.split_once(')').ok_or_else(bad)?;
    let field = Some(field.trim().to_owned()).filter(|f| !f.is_empty());
    let mut words = rest.split_whitespace().peekable();
    let mut group = None;
    if words.peek() == Some(&"by") {
        words.next();
        group = Some(words.next().ok_or_else(bad)?.to_owned());
    }
    let op = words.next().ok_or_else(bad)?;
    let n: f64 = words.next().ok_or_else(bad)?.parse().map_err(|_| bad())?;
    if words.next().is_some() {
        return Err(bad());
    }
    let bound = match op {
        ">" => Bound::Gt(n),
        ">=" => Bound::Gte(n),
        "<" => Bound::Lt(n),
        "<=" => Bound::Lte(n),
        "=" | "==" => Bound::Eq(n),
        "!=" => Bound::Neq(n),
        _ => return Err(bad()),
    };
    Ok((field, group, bound))
}

#[cfg(test)]
mod tests {
    use super::super::document::{Document, read};
    use super::super::yaml::load_documents;
    use super::*;

    fn rule(text: &str) -> RuleDoc {
        match read(&load_documents(text).unwrap()[0], "t").unwrap() {
            Document::Rule(r) => r,
            _ => panic!(),
        }
    }

    #[test]
    fn count_by_becomes_an_event_count_correlation() {
        let r = rule(
            "title: T\nid: x\ndetection:\n  sel: {a: 1}\n  timeframe: 10m\n  condition: sel | count() by ip > 5\n",
        );
        assert!(is_legacy(&r));
        let out = rewrite(&r).unwrap();
        assert_eq!(out.bases[0].conditions, ["sel"]);
        assert_eq!(out.correlation.meta.id, "x");
        assert_eq!(out.correlation.kind, CorrelationType::EventCount);
        assert_eq!(out.correlation.group_by, ["ip"]);
        assert_eq!(out.correlation.bounds, vec![Bound::Gt(5.0)]);
        assert_eq!(out.correlation.rules, ["x:selection"]);
        let r = rule(
            "title: T\nid: x\ndetection:\n  sel: {a: 1}\n  timeframe: 1h\n  condition: sel | count(user) > 2\n",
        );
        assert_eq!(
            rewrite(&r).unwrap().correlation.kind,
            CorrelationType::ValueCount
        );
    }

    #[test]
    fn refuses_what_it_cannot_rewrite() {
        let r = rule(
            "title: T\nid: x\ndetection:\n  a: {x: 1}\n  b: {x: 2}\n  condition: a | near b\n",
        );
        assert!(
            rewrite(&r)
                .unwrap_err()
                .contains("needs detection.timeframe")
        );
        let r = rule(
            "title: T\nid: x\ndetection:\n  a: {x: 1}\n  b: {x: 2}\n  timeframe: 5m\n  condition: a and b\n",
        );
        assert!(
            rewrite(&r)
                .unwrap_err()
                .contains("timeframe without an aggregation")
        );
        let r = rule(
            "title: T\nid: x\ndetection:\n  a: {x: 1}\n  timeframe: 5m\n  condition: a | max(x) > 2\n",
        );
        assert!(rewrite(&r).unwrap_err().contains("unknown aggregation"));
        let r = rule(
            "title: T\nid: x\ndetection:\n  a: {x: 1}\n  b: {x: 2}\n  timeframe: 5m\n  condition: a | near b\n",
        );
        assert_eq!(
            rewrite(&r).unwrap().correlation.rules,
            ["x:near0", "x:near1"]
        );
    }
}
