//! The tag normalizer with arbitrary rule sets and arbitrary samples.
//!
//! The input builds a `processing:` section (tag mappings whose source tags, asset templates,
//! units and numbers are drawn from small alphabets, so that patterns, captures and exact rules
//! actually meet the samples, plus arbitrary text now and then), compiles it with
//! `RuleSet::compile` (errors must name a key under `processing`), then feeds the normalizer a
//! stream of samples with arbitrary identities, values, timestamps and qualities. Checked: no
//! panic; the counters add up (every sample is emitted, suppressed, bad, rejected or unmapped);
//! the unmapped list keeps its limits; a signal names the identity it came from and carries a
//! value of its signal type.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use oee_core::config::processing::{
    ProcessingConfig, StateCategory, StateCodeRule, TagMapping, UnmappedPolicy,
};
use oee_core::normalize::rules::RuleSet;
use oee_core::normalize::{Normalizer, Outcome, SourceSample, Value};

const NAMES: [&str; 8] = ["G", "H", "E1", "E2", "D", "m", "Temp", "Count"];
const PATTERN_PARTS: [&str; 8] = ["*", "{a}", "{b}", "x{a}", "{a}y", "*y", "**", "{}"];
const SIGNALS: [&str; 10] = [
    "counter.total",
    "counter.good",
    "counter.reject",
    "state.running",
    "state.code",
    "fault.active",
    "fault.code",
    "temperature",
    "pressure",
    "raw",
];
const UNITS: [&str; 8] = ["degC", "degF", "K", "bar", "psi", "kPa", "m/s", "furlong"];
const TEMPLATES: [&str; 6] = ["M1", "{a}", "{b}", "m-{a}-{b}", "{c}", ""];

fn name(u: &mut Unstructured<'_>) -> Result<String> {
    Ok(match u.int_in_range(0..=15u8)? {
        0 => u.arbitrary::<String>()?,
        1..=3 => u.choose(&PATTERN_PARTS)?.to_string(),
        _ => u.choose(&NAMES)?.to_string(),
    })
}

fn opt<T>(
    u: &mut Unstructured<'_>,
    f: impl FnOnce(&mut Unstructured<'_>) -> Result<T>,
) -> Result<Option<T>> {
    Ok(if u.arbitrary()? { Some(f(u)?) } else { None })
}

fn number(u: &mut Unstructured<'_>) -> Result<f64> {
    Ok(match u.int_in_range(0..=7u8)? {
        0 => u.arbitrary()?,
        1 => 0.0,
        2 => -1.5,
        3 => f64::from(u.int_in_range(0..=1000u16)?),
        4 => f64::NAN,
        5 => f64::INFINITY,
        6 => 1e300,
        _ => 0.5,
    })
}

fn mapping(u: &mut Unstructured<'_>) -> Result<TagMapping> {
    let parts = u.int_in_range(2..=5u8)?;
    let mut tag = String::new();
    if u.arbitrary()? {
        tag.push('/');
    }
    for i in 0..parts {
        if i > 0 {
            tag.push('/');
        }
        tag.push_str(&name(u)?);
    }
    let template =
        |u: &mut Unstructured<'_>| -> Result<String> { Ok(u.choose(&TEMPLATES)?.to_string()) };
    Ok(TagMapping {
        source_tag: opt(u, |_| Ok(tag))?,
        signal_type: opt(u, |u| Ok(u.choose(&SIGNALS)?.to_string()))?,
        machine_id: opt(u, template)?,
        line_id: opt(u, template)?,
        site_id: opt(u, template)?,
        labels: if u.arbitrary()? {
            [("k".to_string(), template(u)?)].into_iter().collect()
        } else {
            Default::default()
        },
        source_unit: opt(u, |u| Ok(u.choose(&UNITS)?.to_string()))?,
        target_unit: opt(u, |u| Ok(u.choose(&UNITS)?.to_string()))?,
        scale_factor: opt(u, number)?,
        offset: opt(u, number)?,
        deadband_absolute: opt(u, number)?,
        deadband_percent: opt(u, number)?,
        span_low: opt(u, number)?,
        span_high: opt(u, number)?,
        max_silence_s: opt(u, number)?,
        min_quality: opt(u, |u| Ok(*u.choose(&[0, 192, 500, -1, i32::MAX])?))?,
        fault_code: opt(u, |u| u.arbitrary())?,
    })
}

fn processing(u: &mut Unstructured<'_>) -> Result<ProcessingConfig> {
    let mut p = ProcessingConfig::default();
    for _ in 0..u.int_in_range(0..=6u8)? {
        p.tag_mappings.push(mapping(u)?);
    }
    if u.arbitrary()? {
        p.ideal_cycle_times
            .insert(u.choose(&TEMPLATES)?.to_string(), number(u)?);
    }
    p.unmapped.policy = if u.arbitrary()? {
        UnmappedPolicy::Drop
    } else {
        UnmappedPolicy::Telemetry
    };
    p.unmapped.max_listed_per_node = usize::from(u.int_in_range(0..=3u8)?);
    p.max_tracked_sources = usize::from(u.int_in_range(0..=8u8)?);
    for _ in 0..u.int_in_range(0..=3u8)? {
        p.state_codes.rules.push(StateCodeRule {
            code: opt(u, |u| Ok(i64::from(u.int_in_range(-2..=5i8)?)))?,
            from: opt(u, |u| Ok(i64::from(u.int_in_range(-2..=5i8)?)))?,
            to: opt(u, |u| Ok(i64::from(u.int_in_range(-2..=5i8)?)))?,
            category: opt(u, |u| {
                Ok(*u.choose(&[
                    StateCategory::Running,
                    StateCategory::Setup,
                    StateCategory::PlannedStop,
                ])?)
            })?,
            reason: None,
        });
    }
    p.analog_defaults.max_silence_s = number(u)?;
    Ok(p)
}

fn value(u: &mut Unstructured<'_>) -> Result<Value> {
    Ok(match u.int_in_range(0..=6u8)? {
        0 => Value::Null,
        1 => Value::Bool(u.arbitrary()?),
        2 => Value::Int(u.arbitrary()?),
        3 => Value::UInt(u.arbitrary()?),
        4 => Value::Float(number(u)?),
        5 => Value::Float(u.arbitrary()?),
        _ => Value::Text(u.arbitrary()?),
    })
}

fn run(data: &[u8]) -> Result<()> {
    let mut u = Unstructured::new(data);
    let cfg = processing(&mut u)?;
    let rules = match RuleSet::compile(&cfg) {
        Ok(r) => r,
        Err(errors) => {
            assert!(!errors.is_empty());
            for e in &errors {
                assert!(e.path.starts_with("processing."), "{e:?}");
                assert!(!e.message.is_empty(), "{e:?}");
            }
            return Ok(());
        }
    };
    let mut n = Normalizer::new(Arc::new(rules));
    while !u.is_empty() {
        let group = name(&mut u)?;
        let edge = name(&mut u)?;
        let device = opt(&mut u, name)?;
        let metric = name(&mut u)?;
        let v = value(&mut u)?;
        let was_text = matches!(v, Value::Text(_));
        let sample = SourceSample {
            group: &group,
            edge_node: &edge,
            device: device.as_deref(),
            metric: &metric,
            value: v,
            timestamp_ms: u.arbitrary()?,
            quality: *u.choose(&[192, 0, 500, 100, i32::MIN])?,
            historical: u.arbitrary()?,
            transient: u.arbitrary()?,
            int_bits: *u.choose(&[0, 8, 16, 32, 64, 7])?,
        };
        let out = n.normalize(sample);
        if let Outcome::Signal(sig) | Outcome::Unmapped(Some(sig)) = &out {
            let src = &sig.tag.source;
            assert_eq!(
                (&*src.group, &*src.edge_node, &*src.metric),
                (&*group, &*edge, &*metric)
            );
            // An empty device name is the node itself (Sparkplug device ids are never empty).
            assert_eq!(
                src.device.as_deref(),
                device.as_deref().filter(|d| !d.is_empty())
            );
            if sig.tag.signal_type.is_counter() {
                assert!(
                    matches!(sig.value, Value::Int(_) | Value::UInt(_) | Value::Null),
                    "{sig:?}"
                );
            }
            if sig.tag.rule.is_some() && sig.tag.signal_type.is_analog() && !was_text {
                assert!(!matches!(sig.value, Value::Text(_)), "{sig:?}");
            }
        }
        let s = n.stats();
        assert_eq!(
            s.samples,
            s.emitted + s.suppressed + s.bad_quality + s.rejected + s.unmapped,
            "{s:?}"
        );
        assert!(s.untracked <= s.samples);
    }
    for node in n.unmapped() {
        assert!(node.metrics.len() <= cfg.unmapped.max_listed_per_node);
        assert!(node.metrics.iter().map(|m| m.1).sum::<u64>() <= node.samples);
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = run(data);
});
