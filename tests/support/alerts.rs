//! Reading what a daemon delivered to its alerts file.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

/// Every alert in a JSON-lines file (none when it does not exist yet). A
/// last line without its newline is being written, and is left for the
/// next read.
pub fn read(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let complete = match text.rfind('\n') {
        Some(i) => &text[..=i],
        None => "",
    };
    complete
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line of the alerts file is one JSON alert"))
        .collect()
}

/// For each event id, the distinct alert ids raised for it. One alert id
/// seen twice is a redelivery; two alert ids for one event would be the
/// event detected twice.
pub fn by_event(alerts: &[Value]) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for a in alerts {
        let event = a["event_id"].as_str().unwrap_or_default().to_owned();
        let id = a["id"].as_str().unwrap_or_default().to_owned();
        out.entry(event).or_default().insert(id);
    }
    out
}

/// Waits until `done` holds for the file's alerts, or `limit` passes.
pub fn wait_for(path: &Path, limit: Duration, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let started = Instant::now();
    loop {
        let alerts = read(path);
        if done(&alerts) || started.elapsed() > limit {
            return alerts;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A metric's value from a Prometheus text page, summed over label sets that contain `labels`.
pub fn metric(page: &str, name: &str, labels: &str) -> f64 {
    page.lines()
        .filter(|l| {
            l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']) && l.contains(labels)
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Waits until every alert the daemon raised has reached `sink` and the
/// outbox is empty, or `limit` passes; returns whether it did.
pub fn wait_delivered(admin: std::net::SocketAddr, sink: &str, limit: Duration) -> bool {
    let started = Instant::now();
    let label = format!("sink=\"{sink}\"");
    loop {
        let page = super::http::get(admin, "/metrics").1;
        let raised = metric(&page, "cloudwarden_alerts_raised_total", "");
        let delivered = metric(&page, "cloudwarden_alerts_delivered_total", &label);
        let waiting = metric(&page, "cloudwarden_outbox_alerts", "");
        if raised > 0.0 && raised == delivered && waiting == 0.0 {
            return true;
        }
        if started.elapsed() > limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
