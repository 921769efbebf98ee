//! Arbitrary text into the config loader: TOML parsing, environment overrides and validation.
//! Lines after a `#ENV` line are `NAME=value` overrides (as `SLUICE__...` variables would give).
//! Any panic is a bug: a bad config is a list of problems, never a crash.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (toml, env) = text.split_once("\n#ENV\n").unwrap_or((text, ""));
    let env: Vec<(String, String)> = env
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect();
    if let Err(problems) = sluice::config::Config::from_toml_str(toml, env) {
        // Rendering the problems is part of the path a user sees.
        let _ = problems.to_string();
    }
});
