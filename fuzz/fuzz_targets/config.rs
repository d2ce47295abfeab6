//! Configuration loading on arbitrary bytes: `load_settings` (the located YAML parser, the
//! environment overrides, decoding every section, every semantic check) must return settings
//! or diagnostics and never panic. Checked as well:
//!
//! - every diagnostic is located: a file position inside the text (line 1 ..= line breaks + 1,
//!   a lone CR counting as a break as in YAML; column ≥ 1) or an environment variable that was
//!   given, and says something;
//! - valid settings convert to engine parameters (`Domain::engine_params`, which the service
//!   runs at start-up and which must not fail once `load_settings` accepted the file) that are
//!   usable: no negative durations, a rolling window with a positive length and step. Then the
//!   OEE engine and a normalizer are built from them.
//!
//! Environment overrides come from the input itself: every line `#!OEE_…=value` (a YAML comment,
//! so the document is unchanged) is one variable.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use oee_core::config::yaml::Location;
use oee_core::normalize::Normalizer;
use oee_core::windows::OeeEngine;
use oee_stream::settings::load_settings;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let env: BTreeMap<String, String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("#!"))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    // Lines as YAML counts them: CR LF, a lone CR and LF each end a line (YAML 1.2, 5.4).
    let breaks = text.replace("\r\n", "\n").matches(['\r', '\n']).count();
    let lines = u32::try_from(breaks + 1).unwrap_or(u32::MAX);
    match load_settings(&text, "fuzz.yml", &env) {
        Err(diags) => {
            assert!(!diags.is_empty(), "an error without a diagnostic");
            for d in &diags {
                assert!(!d.message.is_empty(), "empty message: {d:?}");
                match &d.location {
                    Location::File { line, column } => {
                        assert!(
                            (1..=lines.saturating_add(1)).contains(line) && *column >= 1,
                            "{d:?} is outside the {lines} lines of the text"
                        );
                    }
                    Location::Env(var) => assert!(env.contains_key(var), "{d:?}: unknown variable"),
                }
            }
        }
        Ok(settings) => {
            let (oee, faults) = settings
                .domain
                .engine_params()
                .expect("validated settings must convert to engine parameters");
            assert!(
                oee.micro_stop_ms >= 0,
                "micro_stop_ms {}",
                oee.micro_stop_ms
            );
            assert!(
                oee.allowed_lateness_ms >= 0,
                "allowed_lateness_ms {}",
                oee.allowed_lateness_ms
            );
            if let Some(r) = &oee.rolling {
                assert!(r.len_ms > 0 && r.every_ms > 0, "rolling window {r:?}");
            }
            assert!(
                faults.dedup_window_ms >= 0,
                "dedup_window_ms {}",
                faults.dedup_window_ms
            );
            assert!(
                faults.chatter_window_ms >= 0,
                "chatter_window_ms {}",
                faults.chatter_window_ms
            );
            let _engine = OeeEngine::new(oee, faults);
            let _normalizer = Normalizer::new(std::sync::Arc::new(settings.domain.rules.clone()));
        }
    }
});
