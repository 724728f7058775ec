//! Alerts for the alert path's unit tests.

use crate::detection::Alert;
use crate::detection::Level;
use crate::detection::alert::{AlertKind, AlertRule};

/// A high alert of rule `id` about a CI role's call from 10.1.2.3.
pub fn alert(id: &str) -> Alert {
    Alert {
        id: None,
        rule: AlertRule {
            id: id.to_owned(),
            title: "Something Worth Knowing".to_owned(),
            level: Level::High,
            tags: vec!["attack.persistence".to_owned()],
            description: Some("Check who did it.".to_owned()),
            falsepositives: vec!["Administrators".to_owned()],
            references: vec![],
        },
        kind: AlertKind::Match,
        correlation: None,
        event_time: Some("2026-11-22T12:00:00Z".into()),
        event_id: Some("e-1".into()),
        event_source: Some("iam.amazonaws.com".into()),
        event_name: Some("CreateUser".into()),
        principal: Some("arn:aws:iam::123456789012:role/ci-deploy".into()),
        account: Some("123456789012".into()),
        region: Some("us-east-1".into()),
        source_ip: Some("10.1.2.3".into()),
        user_agent: Some("aws-cli/2.15 Terraform/1.7".into()),
        source: Some("trail".to_owned()),
        origin: None,
        dedup_key: format!("{id}|arn:aws:iam::123456789012:role/ci-deploy|123456789012"),
        events: vec![],
        correlated_events: vec![],
        repeats: None,
        posture: None,
        response: None,
        anomaly: None,
        trimmed: vec![],
    }
}
