//! cloudwarden and rsigma side by side: the same NDJSON records and the
//! same Sigma rules, parse and evaluation on one core, best of three runs.
//!
//! Usage: compare-rsigma RULES_DIR FILE.ndjson

use std::sync::Arc;
use std::time::Instant;

use cloudwarden::detection::engine::{Engine, EngineConfig, EventInput};
use cloudwarden::detection::event::Format;
use cloudwarden::detection::sigma::document::LogSource;
use cloudwarden::detection::sigma::ruleset::{LoadOptions, RuleSet};

fn best_of_three(mut run: impl FnMut() -> usize) -> (f64, usize) {
    let mut best = f64::MAX;
    let mut matches = 0;
    for _ in 0..3 {
        let started = Instant::now();
        matches = run();
        best = best.min(started.elapsed().as_secs_f64());
    }
    (best, matches)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(rules_dir), Some(file)) = (args.next(), args.next()) else {
        eprintln!("usage: compare-rsigma RULES_DIR FILE.ndjson");
        std::process::exit(2);
    };
    let data = std::fs::read_to_string(&file).expect("readable NDJSON");
    let lines: Vec<&str> = data.lines().filter(|l| !l.trim().is_empty()).collect();
    let (paths, _) = cloudwarden::rules::discover(&[rules_dir.clone().into()]);
    let (files, _) = cloudwarden::rules::read_files(&paths);

    // cloudwarden: the daemon's engine, without dedup (rsigma has none).
    let set = Arc::new(RuleSet::load(&files, &LoadOptions::default()));
    let logsource = LogSource::cloudtrail();
    let (cw_secs, cw_matches) = best_of_three(|| {
        let mut engine = Engine::new(Arc::clone(&set), EngineConfig::default());
        let mut n = 0;
        for raw in &lines {
            let input = EventInput {
                raw,
                format: Format::Json,
                logsource: &logsource,
                source: None,
                origin: None,
                time_hint_ms: None,
                dedup_id: None,
                reread_from: None,
            };
            if let Ok(p) = engine.process(&input) {
                n += p.alerts.len();
            }
        }
        n
    });

    // rsigma: parse each record with serde_json, evaluate every rule.
    let mut engine = rsigma_eval::Engine::new();
    for f in &files {
        let collection = rsigma_parser::parse_sigma_yaml(&f.text).expect("rsigma parses the rule");
        engine
            .add_collection(&collection)
            .expect("rsigma compiles the rule");
    }
    let (rs_secs, rs_matches) = best_of_three(|| {
        let mut n = 0;
        for raw in &lines {
            let value: serde_json::Value = serde_json::from_str(raw).expect("JSON record");
            let event = rsigma_eval::event::JsonEvent::borrow(&value);
            n += engine.evaluate(&event).len();
        }
        n
    });

    let n = lines.len() as f64;
    println!(
        "{} records, {} rule files ({} rules loaded by cloudwarden)",
        lines.len(),
        files.len(),
        set.rules.len() + set.correlations.len()
    );
    println!(
        "cloudwarden: {:>10.0} events/s  ({cw_matches} alerts)",
        n / cw_secs
    );
    println!(
        "rsigma:      {:>10.0} events/s  ({rs_matches} matches)",
        n / rs_secs
    );
    println!("ratio:       {:>10.1}x", rs_secs / cw_secs);
}
