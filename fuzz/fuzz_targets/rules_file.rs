//! `portctl guard --rules FILE`: any text as a rules file. Parsing never panics; an error
//! names a position inside the text; a parsed rule set decides without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portfilter_client::rules::RuleSet;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match RuleSet::from_toml(text, "fuzz.toml") {
        Ok(set) => {
            for rule in &set.rules {
                let _ = rule.to_string();
            }
        }
        Err(error) => {
            if let Some(line) = error.line() {
                assert!(
                    line >= 1 && line <= text.lines().count().max(1) + 1,
                    "error line {line} outside a text of {} lines",
                    text.lines().count()
                );
            }
            let _ = error.to_string();
        }
    }
});
