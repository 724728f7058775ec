//! Suppressions: alerts people decided they do not want, each with a reason
//! and perhaps an expiry, so that an exception is written down rather than
//! a rule switched off.

use std::net::IpAddr;

use wildmatch::WildMatch;

use crate::config::SuppressionConfig;
use crate::detection::Alert;

/// One suppression, ready to match. It matches an alert when every
/// criterion it sets matches; a criterion about a field the alert lacks
/// does not match.
#[derive(Debug, Clone)]
pub struct Suppression {
    config: SuppressionConfig,
    principal: Option<WildMatch>,
    user_agent: Option<WildMatch>,
    resource: Option<WildMatch>,
    /// The reason, cut to a length fit for a metric label.
    label: String,
}

/// The longest reason used as a metric label.
const LABEL_CHARS: usize = 64;

impl Suppression {
    /// Prepares `config`'s patterns.
    pub fn new(config: SuppressionConfig) -> Suppression {
        Suppression {
            principal: config.principal.as_deref().map(WildMatch::new),
            user_agent: config.user_agent.as_deref().map(WildMatch::new),
            resource: config.resource.as_deref().map(WildMatch::new),
            label: config.reason.chars().take(LABEL_CHARS).collect(),
            config,
        }
    }

    /// Its reason, shortened, for the log.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The configuration it came from.
    pub fn config(&self) -> &SuppressionConfig {
        &self.config
    }

    /// Whether it has expired at `now`.
    pub fn expired(&self, now: jiff::Timestamp) -> bool {
        self.config.expires.is_some_and(|at| at <= now)
    }

    /// Whether it suppresses `alert` at `now`.
    pub fn matches(&self, alert: &Alert, now: jiff::Timestamp) -> bool {
        if self.expired(now) {
            return false;
        }
        let c = &self.config;
        let text_is = |wanted: &Option<String>, found: Option<&str>| {
            wanted.as_deref().is_none_or(|w| found == Some(w))
        };
        let pattern = |wanted: &Option<WildMatch>, found: Option<&str>| {
            wanted
                .as_ref()
                .is_none_or(|w| found.is_some_and(|f| w.matches(f)))
        };
        let ip = c.source_ip.is_none_or(|net| {
            alert
                .source_ip
                .as_deref()
                .and_then(|ip| ip.parse::<IpAddr>().ok())
                .is_some_and(|ip| net.contains(&ip))
        });
        text_is(&c.rule, Some(&alert.rule.id))
            && text_is(&c.account, alert.account.as_deref())
            && pattern(&self.principal, alert.principal.as_deref())
            && pattern(&self.user_agent, alert.user_agent.as_deref())
            && pattern(
                &self.resource,
                alert.posture.as_ref().map(|p| p.resource.as_str()),
            )
            && ip
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detection::alert::AlertRule;

    fn alert() -> Alert {
        crate::alerts::testing::alert("r-1")
    }

    fn config() -> SuppressionConfig {
        SuppressionConfig {
            reason: "CI deploys".to_owned(),
            rule: None,
            principal: None,
            source_ip: None,
            account: None,
            user_agent: None,
            resource: None,
            expires: None,
        }
    }

    fn now() -> jiff::Timestamp {
        "2026-11-22T12:00:00Z".parse().unwrap()
    }

    #[test]
    fn every_set_criterion_must_match() {
        let s = Suppression::new(SuppressionConfig {
            rule: Some("r-1".to_owned()),
            principal: Some("arn:aws:iam::*:role/ci-*".to_owned()),
            source_ip: Some("10.0.0.0/8".parse().unwrap()),
            account: Some("123456789012".to_owned()),
            user_agent: Some("*Terraform*".to_owned()),
            ..config()
        });
        assert!(s.matches(&alert(), now()));
        let other_ip = Alert {
            source_ip: Some("203.0.113.9".into()),
            ..alert()
        };
        assert!(!s.matches(&other_ip, now()));
        let other_rule = Alert {
            rule: AlertRule {
                id: "r-2".to_owned(),
                ..alert().rule
            },
            ..alert()
        };
        assert!(!s.matches(&other_rule, now()));
        let no_agent = Alert {
            user_agent: None,
            ..alert()
        };
        assert!(
            !s.matches(&no_agent, now()),
            "a missing field does not match"
        );
        let service_ip = Alert {
            source_ip: Some("ec2.amazonaws.com".into()),
            ..alert()
        };
        assert!(!s.matches(&service_ip, now()));
    }

    #[test]
    fn an_expired_suppression_no_longer_applies() {
        let s = Suppression::new(SuppressionConfig {
            account: Some("123456789012".to_owned()),
            expires: Some("2026-11-22T12:00:01Z".parse().unwrap()),
            ..config()
        });
        assert!(s.matches(&alert(), now()));
        let later: jiff::Timestamp = "2026-11-22T12:00:01Z".parse().unwrap();
        assert!(!s.matches(&alert(), later));
        assert!(s.expired(later));
    }
}
