//! Any text as a CloudWatch Logs filter pattern: parsing reports errors,
//! never panics; what parses evaluates and prints a canonical form that
//! parses again to the same meaning.
#![no_main]

use cloudwarden::alarms::pattern;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(parsed) = pattern::parse(text) else {
        return;
    };
    let event = serde_json::json!({"eventName": "ConsoleLogin", "n": 5, "a": [1, {"b": null}]});
    let _ = parsed.matches(&event);
    let again = pattern::parse(&parsed.canonical()).expect("a canonical form parses");
    assert!(parsed.equivalent(&again), "the canonical form means the same");
});
