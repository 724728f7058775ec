//! Any bytes as a record, through the built-in pack: every record is either
//! evaluated or rejected with a reason, never a panic.
#![no_main]

use std::sync::{Arc, OnceLock};

use cloudwarden::detection::engine::{Engine, EngineConfig, EventInput};
use cloudwarden::detection::event::Format;
use cloudwarden::detection::sigma::document::LogSource;
use cloudwarden::detection::sigma::ruleset::{LoadOptions, RuleSet};
use libfuzzer_sys::fuzz_target;

fn rules() -> Arc<RuleSet> {
    static RULES: OnceLock<Arc<RuleSet>> = OnceLock::new();
    Arc::clone(RULES.get_or_init(|| {
        let options = LoadOptions {
            placeholders: [("automation_principals", vec![]), ("trusted_accounts", vec![])]
                .into_iter()
                .map(|(k, v): (&str, Vec<String>)| (k.to_owned(), v))
                .collect(),
            ..LoadOptions::default()
        };
        Arc::new(RuleSet::load(&cloudwarden::rules::builtin(), &options))
    }))
}

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    let mut engine = Engine::new(rules(), EngineConfig::default());
    let logsource = LogSource::cloudtrail();
    for format in [Format::CloudTrail, Format::Json, Format::Text] {
        let input = EventInput {
            raw,
            format,
            logsource: &logsource,
            source: None,
            origin: None,
            time_hint_ms: None,
            dedup_id: None,
            reread_from: None,
        };
        let _ = engine.process(&input);
    }
    let _ = engine.finish();
});
