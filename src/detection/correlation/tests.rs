//! The correlation runtime: bounds, lateness, windows judged at their end,
//! and saving and restoring state.

use std::sync::Arc;

use super::*;
use crate::detection::sigma::document::{Bound, CorrelationType, Meta};

fn meta(id: &str) -> Arc<Meta> {
    Arc::new(Meta {
        id: id.to_owned(),
        name: None,
        title: id.to_owned(),
        level: crate::detection::Level::High,
        level_set: true,
        status: None,
        description: None,
        tags: Vec::new(),
        falsepositives: Vec::new(),
        references: Vec::new(),
        author: None,
        logsource: Default::default(),
        dedup_fields: Vec::new(),
        line: 1,
    })
}

fn rule(
    id: &str,
    kind: CorrelationType,
    bounds: Vec<Bound>,
    inputs: usize,
    timespan_ms: i64,
) -> CorrelationRule {
    CorrelationRule {
        meta: meta(id),
        spec: Spec {
            kind,
            timespan: timespan_ms,
            bounds,
            inputs,
        },
        group_by: vec!["user".to_owned()],
        inputs: (0..inputs)
            .map(|_| Input {
                group_fields: Vec::new(),
                value_field: None,
            })
            .collect(),
        alerts: true,
        consumers: Vec::new(),
        origin: String::new(),
    }
}

fn obs(time: i64, user: &str) -> Observation {
    Observation {
        time,
        group: vec![user.to_owned()],
        values: Vec::new(),
        digest: EventDigest::default(),
        derived: false,
    }
}

fn runtime(rules: Vec<CorrelationRule>, limits: Limits) -> Runtime {
    Runtime::new(rules.into(), limits)
}

#[test]
fn fires_once_at_the_threshold_and_starts_over() {
    let mut rt = runtime(
        vec![rule(
            "c",
            CorrelationType::EventCount,
            vec![Bound::Gte(3.0)],
            1,
            60_000,
        )],
        Limits::default(),
    );
    let mut fires = Vec::new();
    for t in 0..7 {
        fires.extend(rt.observe(0, 0, obs(t * 1000, "alice")));
    }
    // 7 events: fires at the 3rd and the 6th.
    assert_eq!(fires.len(), 2);
    assert_eq!(fires[0].verdict.value, 3.0);
    assert_eq!(fires[0].group, vec!["alice".to_owned()]);
    assert_eq!(fires[0].seen, 3);
}

#[test]
fn groups_are_bounded_and_evictions_counted() {
    let limits = Limits {
        max_groups: 20,
        ..Limits::default()
    };
    let mut rt = runtime(
        vec![rule(
            "c",
            CorrelationType::EventCount,
            vec![Bound::Gte(100.0)],
            1,
            60_000,
        )],
        limits,
    );
    for i in 0..1000 {
        rt.observe(0, 0, obs(1000, &format!("user{i}")));
    }
    assert!(rt.group_count() <= 20, "{}", rt.group_count());
    assert!(rt.stats().evicted_groups >= 980);
}

#[test]
fn events_later_than_the_allowance_are_counted_and_not_correlated() {
    let limits = Limits {
        late_allowance_ms: 10_000,
        ..Limits::default()
    };
    let mut rt = runtime(
        vec![rule(
            "c",
            CorrelationType::EventCount,
            vec![Bound::Gte(2.0)],
            1,
            600_000,
        )],
        limits,
    );
    assert!(rt.observe(0, 0, obs(100_000, "a")).is_empty());
    // 5 s late: within the allowance, and it completes the pair.
    assert_eq!(rt.observe(0, 0, obs(95_000, "a")).len(), 1);
    // 60 s late: counted and ignored.
    assert!(rt.observe(0, 0, obs(40_000, "b")).is_empty());
    assert_eq!(rt.stats().late_events, 1);
}

#[test]
fn upper_bounds_are_judged_when_the_watermark_passes_the_window() {
    let limits = Limits {
        late_allowance_ms: 0,
        ..Limits::default()
    };
    let mut rt = runtime(
        vec![rule(
            "few",
            CorrelationType::EventCount,
            vec![Bound::Lt(3.0)],
            1,
            10_000,
        )],
        limits,
    );
    assert!(rt.observe(0, 0, obs(0, "quiet")).is_empty());
    assert!(rt.observe(0, 0, obs(1_000, "busy")).is_empty());
    assert!(rt.observe(0, 0, obs(2_000, "busy")).is_empty());
    assert!(rt.observe(0, 0, obs(3_000, "busy")).is_empty());
    // Time moves past both windows: "quiet" had 1 event (< 3) and fires,
    // "busy" had 3 and does not.
    let fires = rt.observe(0, 0, obs(20_000, "other"));
    assert_eq!(fires.len(), 1, "{fires:?}");
    assert_eq!(fires[0].group, vec!["quiet".to_owned()]);
}

#[test]
fn state_survives_a_save_and_restore() {
    let make = || {
        runtime(
            vec![rule(
                "c",
                CorrelationType::EventCount,
                vec![Bound::Gte(3.0)],
                1,
                60_000,
            )],
            Limits::default(),
        )
    };
    let mut first = make();
    first.track_changes(true);
    assert!(first.observe(0, 0, obs(1_000, "alice")).is_empty());
    assert!(first.observe(0, 0, obs(2_000, "alice")).is_empty());
    let changes = first.take_changes();
    assert_eq!(changes.len(), 1);
    let saved = serde_json::to_string(&changes[0]).unwrap();
    let change: GroupChange = serde_json::from_str(&saved).unwrap();
    let mut second = make();
    assert!(second.restore(&change.rule_id, &change.key, change.group.unwrap()));
    assert!(!second.restore("gone", &change.key, Group::default()));
    // The third event after the "restart" completes the count.
    assert_eq!(second.observe(0, 0, obs(3_000, "alice")).len(), 1);
}

#[test]
fn changes_are_only_collected_when_asked_for() {
    let mut rt = runtime(
        vec![rule(
            "c",
            CorrelationType::EventCount,
            vec![Bound::Gte(3.0)],
            1,
            60_000,
        )],
        Limits::default(),
    );
    rt.observe(0, 0, obs(1_000, "alice"));
    assert!(rt.take_changes().is_empty());
}
