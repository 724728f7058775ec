//! Which alerts a sink takes: a minimum level, and optionally rule ids and tags.

use crate::config::SnsSinkConfig;
use crate::detection::{Alert, Level};

/// A sink's filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Alerts below this level are left out.
    pub min_level: Level,
    /// Only these rule ids, when not empty.
    pub rules: Vec<String>,
    /// Only rules with one of these tags or a tag under one (`attack` takes
    /// `attack.t1078`), when not empty.
    pub tags: Vec<String>,
}

impl Route {
    /// Every alert.
    pub fn all() -> Route {
        Route {
            min_level: Level::Informational,
            rules: Vec::new(),
            tags: Vec::new(),
        }
    }

    /// A topic's filter.
    pub fn of_topic(topic: &SnsSinkConfig) -> Route {
        Route {
            min_level: topic.min_level,
            rules: topic.rules.clone(),
            tags: topic.tags.clone(),
        }
    }

    /// Whether the sink takes `alert`.
    pub fn accepts(&self, alert: &Alert) -> bool {
        let rule = &alert.rule;
        let tag_matches = |tag: &String| {
            self.tags.iter().any(|wanted| {
                tag.eq_ignore_ascii_case(wanted)
                    || (tag.len() > wanted.len()
                        && tag.as_bytes()[wanted.len()] == b'.'
                        && tag[..wanted.len()].eq_ignore_ascii_case(wanted))
            })
        };
        rule.level >= self.min_level
            && (self.rules.is_empty() || self.rules.contains(&rule.id))
            && (self.tags.is_empty() || rule.tags.iter().any(tag_matches))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(level: Level, id: &str, tags: &[&str]) -> Alert {
        let mut alert = crate::alerts::testing::alert(id);
        alert.rule.level = level;
        alert.rule.tags = tags.iter().map(|t| (*t).to_owned()).collect();
        alert
    }

    #[test]
    fn filters_by_level_rule_and_tag() {
        let route = Route {
            min_level: Level::Medium,
            rules: vec![],
            tags: vec!["attack.persistence".to_owned(), "cis".to_owned()],
        };
        assert!(route.accepts(&alert(Level::High, "a", &["attack.persistence"])));
        assert!(route.accepts(&alert(Level::Medium, "a", &["cis.3.1"])));
        assert!(!route.accepts(&alert(Level::Low, "a", &["attack.persistence"])));
        assert!(!route.accepts(&alert(Level::High, "a", &["attack.persistence_x"])));
        assert!(!route.accepts(&alert(Level::High, "a", &["cisco"])));
        let by_rule = Route {
            rules: vec!["a".to_owned()],
            ..Route::all()
        };
        assert!(by_rule.accepts(&alert(Level::Low, "a", &[])));
        assert!(!by_rule.accepts(&alert(Level::Critical, "b", &[])));
    }
}
