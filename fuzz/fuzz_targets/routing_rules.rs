//! Routing rules files: no YAML or TOML text panics the parser, and the rules it
//! gives match event types without panicking. The first byte picks the format
//! (odd: TOML, even: YAML); the rest is the file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use messaging_core::notifier::RoutingSink;
use messaging_core::Priority;

const PRIORITIES: [Priority; 7] = Priority::ALL;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let Ok(rules) = RoutingSink::parse_rules(text, mode & 1 == 1) else {
        return;
    };
    for rule in &rules {
        for (i, event) in ["compute.instance.create.end", "", "a.b", text]
            .iter()
            .enumerate()
        {
            let _ = rule.matches(event, PRIORITIES[(i + mode as usize) % PRIORITIES.len()]);
        }
        let _ = format!("{rule:?}");
    }
});
