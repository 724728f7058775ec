#![allow(missing_docs)] // criterion_group! generates an undocumented function.

//! Detection speed: the engine alone, on records in memory.
//!
//! The corpus is the built-in pack's own test events (realistic CloudTrail
//! records), or an NDJSON file named by `CLOUDWARDEN_BENCH_EVENTS` (for
//! example the SigmaHQ comparison file). `CLOUDWARDEN_BENCH_RULES` adds a
//! folder of rules (for example SigmaHQ's CloudTrail rules). Each benchmark
//! reports events per second:
//!
//! - `parse_only`: parsing each record into a full `sonic_rs::Value`, the
//!   reference detection is measured against;
//! - `builtin_pack`: the whole engine (parse, index, rules, correlations,
//!   alerts) with the built-in pack and any extra rules;
//! - `unmatchable_rules/N`: the same with N more rules keyed on event names
//!   that never occur: the cost per event must not grow with N.

use std::path::PathBuf;
use std::sync::Arc;

use cloudwarden::detection::engine::{Engine, EngineConfig, EventInput};
use cloudwarden::detection::event::Format;
use cloudwarden::detection::ruletest;
use cloudwarden::detection::sigma::document::LogSource;
use cloudwarden::detection::sigma::ruleset::{LoadOptions, RuleFile, RuleSet};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn corpus() -> Vec<String> {
    if let Ok(path) = std::env::var("CLOUDWARDEN_BENCH_EVENTS") {
        let text = std::fs::read_to_string(&path).expect("CLOUDWARDEN_BENCH_EVENTS is readable");
        let limit: usize = std::env::var("CLOUDWARDEN_BENCH_LIMIT")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(50_000);
        return text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .take(limit)
            .map(str::to_owned)
            .collect();
    }
    let mut events = Vec::new();
    for file in cloudwarden::rules::FILES {
        let Some(tests) = file.tests else { continue };
        let parsed =
            ruletest::parse(file.path, file.path, tests).expect("the pack's test files parse");
        for case in parsed.cases {
            events.extend(case.events);
        }
    }
    events
}

fn rule_files(extra_unmatchable: usize) -> Vec<RuleFile> {
    // CLOUDWARDEN_BENCH_NO_BUILTIN=1 measures the extra rules alone.
    let mut files = if std::env::var_os("CLOUDWARDEN_BENCH_NO_BUILTIN").is_some() {
        Vec::new()
    } else {
        cloudwarden::rules::builtin()
    };
    if let Ok(dir) = std::env::var("CLOUDWARDEN_BENCH_RULES") {
        let (paths, _) = cloudwarden::rules::discover(&[PathBuf::from(dir)]);
        files.extend(cloudwarden::rules::read_files(&paths).0);
    }
    for i in 0..extra_unmatchable {
        files.push(RuleFile {
            origin: format!("bench-{i}.yml"),
            text: format!(
                "title: Never {i}\nid: bench-never-{i}\nlogsource: {{product: aws, service: cloudtrail}}\ndetection:\n  selection:\n    eventSource: bench{i}.amazonaws.com\n    eventName: NeverCalled{i}\n    requestParameters.name|contains: x{i}\n  condition: selection\nlevel: high\n"
            ),
            builtin: false,
        });
    }
    files
}

fn engine(extra_unmatchable: usize) -> Engine {
    let options = LoadOptions {
        placeholders: [
            ("automation_principals", vec![]),
            ("trusted_accounts", vec![]),
        ]
        .into_iter()
        .map(|(k, v): (&str, Vec<String>)| (k.to_owned(), v))
        .collect(),
        ..LoadOptions::default()
    };
    let set = RuleSet::load(&rule_files(extra_unmatchable), &options);
    assert!(set.errors.is_empty(), "bench rules load: {:?}", set.errors);
    Engine::new(Arc::new(set), EngineConfig::default())
}

fn run(engine: &mut Engine, events: &[String], logsource: &LogSource) -> usize {
    let mut alerts = 0;
    for raw in events {
        let input = EventInput {
            raw,
            format: Format::Json,
            logsource,
            source: None,
            origin: None,
            time_hint_ms: None,
            dedup_id: None,
            reread_from: None,
        };
        if let Ok(processed) = engine.process(&input) {
            alerts += processed.alerts.len();
        }
    }
    alerts
}

fn detection(c: &mut Criterion) {
    let events = corpus();
    let logsource = LogSource::cloudtrail();
    let mut group = c.benchmark_group("detect");
    group.throughput(Throughput::Elements(events.len() as u64));
    group.sample_size(20);
    group.bench_function("parse_only", |b| {
        b.iter(|| {
            let mut n = 0;
            for raw in &events {
                let v: sonic_rs::Value = sonic_rs::from_str(raw).expect("corpus is JSON");
                n += usize::from(sonic_rs::JsonValueTrait::get(&v, "eventName").is_some());
            }
            n
        });
    });
    let mut pack = engine(0);
    group.bench_function("builtin_pack", |b| {
        b.iter(|| run(&mut pack, &events, &logsource))
    });
    for extra in [0usize, 500, 2000] {
        let mut more = engine(extra);
        group.bench_function(format!("unmatchable_rules/{extra}"), |b| {
            b.iter(|| run(&mut more, &events, &logsource));
        });
    }
    group.finish();
}

criterion_group!(benches, detection);
criterion_main!(benches);
