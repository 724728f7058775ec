//! Any text as a rule file: loading reports errors, never panics or hangs.
#![no_main]

use cloudwarden::detection::sigma::ruleset::{LoadOptions, RuleFile, RuleSet};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let file = RuleFile {
        origin: "fuzz.yml".to_owned(),
        text: text.to_owned(),
        builtin: false,
    };
    let _ = RuleSet::load(&[file], &LoadOptions::default());
});
