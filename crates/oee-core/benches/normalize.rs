//! Normalizing a stream of samples against 10,000 rules (9,000 patterns, 1,000 exact).
//!
//! Rules: 10 groups × 100 edge nodes (lines); per line 9 pattern rules
//! `Plant{g}/Line{l}/{machine}/Metric{k}` (k = 0..8, analog with a deadband on half of them)
//! and one exact counter rule for `M0/Count`. Sources: every line has 10 devices with the
//! 9 pattern metrics plus `Count` on `M0`: 91,000 identities, plus 1 % unmapped metrics.
//! The stream visits identities in a scrambled order, so the rule cache is exercised as a hash
//! table, not as a single hot entry.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use oee_core::config::processing::{ProcessingConfig, TagMapping};
use oee_core::normalize::rules::RuleSet;
use oee_core::normalize::{Normalizer, Reading, SourceId, SourceSample, Value};

const GROUPS: usize = 10;
const LINES: usize = 100;
const DEVICES: usize = 10;
const METRICS: usize = 9;

fn rules() -> ProcessingConfig {
    let mut maps = Vec::new();
    for g in 0..GROUPS {
        for l in 0..LINES {
            for k in 0..METRICS {
                maps.push(TagMapping {
                    source_tag: Some(format!("Plant{g}/Line{l}/{{machine}}/Metric{k}")),
                    signal_type: Some(format!("analog{k}")),
                    machine_id: Some(format!("P{g}-L{l}-{{machine}}")),
                    line_id: Some(format!("P{g}-L{l}")),
                    site_id: Some(format!("P{g}")),
                    source_unit: Some("psi".into()),
                    target_unit: Some("bar".into()),
                    deadband_absolute: (k % 2 == 0).then_some(0.01),
                    min_quality: Some(192),
                    ..Default::default()
                });
            }
            maps.push(TagMapping {
                source_tag: Some(format!("Plant{g}/Line{l}/M0/Count")),
                signal_type: Some("counter.total".into()),
                machine_id: Some(format!("P{g}-L{l}-M0")),
                ..Default::default()
            });
        }
    }
    assert_eq!(maps.len(), 10_000);
    ProcessingConfig {
        tag_mappings: maps,
        ..Default::default()
    }
}

struct Src {
    group: String,
    node: String,
    device: String,
    metric: String,
}

fn sources() -> Vec<Src> {
    let mut v = Vec::new();
    for g in 0..GROUPS {
        for l in 0..LINES {
            for d in 0..DEVICES {
                for k in 0..=METRICS {
                    let metric = if k == METRICS {
                        if d != 0 {
                            continue;
                        }
                        "Count".to_string()
                    } else {
                        format!("Metric{k}")
                    };
                    v.push(Src {
                        group: format!("Plant{g}"),
                        node: format!("Line{l}"),
                        device: format!("M{d}"),
                        metric,
                    });
                }
            }
            // 1 % unmapped
            v.push(Src {
                group: format!("Plant{g}"),
                node: format!("Line{l}"),
                device: "M0".into(),
                metric: "Other".into(),
            });
        }
    }
    // deterministic scramble (multiplicative step coprime with the length)
    let n = v.len();
    let step = (0..)
        .map(|i| 7919 + i)
        .find(|s| gcd(*s, n) == 1)
        .unwrap_or(1);
    let mut order: Vec<Src> = Vec::with_capacity(n);
    let mut slots: Vec<Option<Src>> = v.into_iter().map(Some).collect();
    for i in 0..n {
        if let Some(s) = slots[(i * step) % n].take() {
            order.push(s);
        }
    }
    order
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a } else { gcd(b, a % b) }
}

fn bench(c: &mut Criterion) {
    let cfg = rules();
    let rs = Arc::new(RuleSet::compile(&cfg).expect("valid"));
    let srcs = sources();
    let mut group = c.benchmark_group("normalize");
    group.throughput(Throughput::Elements(srcs.len() as u64));
    group.sample_size(20);

    // Steady state: every identity already resolved once (the normal case after births).
    let mut n = Normalizer::new(Arc::clone(&rs));
    let mut ts = 0i64;
    let run = |n: &mut Normalizer, ts: &mut i64| {
        for (i, s) in srcs.iter().enumerate() {
            *ts += 1;
            let value = if s.metric == "Count" {
                Value::UInt(i as u64)
            } else {
                Value::Float((i % 97) as f64)
            };
            let out = n.normalize(SourceSample {
                group: &s.group,
                edge_node: &s.node,
                device: Some(&s.device),
                metric: &s.metric,
                value,
                timestamp_ms: *ts,
                quality: 192,
                historical: false,
                transient: false,
                int_bits: 32,
            });
            black_box(out);
        }
    };
    run(&mut n, &mut ts);
    group.bench_function("10k_rules_steady", |b| b.iter(|| run(&mut n, &mut ts)));

    // Handle path: identities resolved once (per Sparkplug alias after a birth), no hashing.
    let handles: Vec<_> = srcs
        .iter()
        .map(|s| {
            let id = SourceId {
                group: &s.group,
                edge_node: &s.node,
                device: Some(&s.device),
                metric: &s.metric,
            };
            n.handle(&id).expect("tracked")
        })
        .collect();
    let counts: Vec<bool> = srcs.iter().map(|s| s.metric == "Count").collect();
    group.bench_function("10k_rules_steady_handles", |b| {
        b.iter(|| {
            for (i, h) in handles.iter().enumerate() {
                ts += 1;
                let value = if counts[i] {
                    Value::UInt(i as u64)
                } else {
                    Value::Float((i % 97) as f64)
                };
                let out = n.normalize_handle(
                    *h,
                    Reading {
                        value,
                        timestamp_ms: ts,
                        quality: 192,
                        historical: false,
                        transient: false,
                        int_bits: 32,
                    },
                );
                black_box(out);
            }
        })
    });

    // Cold: a fresh normalizer resolves every identity through the pattern index once.
    group.bench_function("10k_rules_cold_first_pass", |b| {
        b.iter(|| {
            let mut n = Normalizer::new(Arc::clone(&rs));
            let mut ts = 0;
            run(&mut n, &mut ts);
        })
    });
    group.finish();

    let mut g2 = c.benchmark_group("compile");
    g2.sample_size(10);
    g2.bench_function("10k_rules", |b| {
        b.iter(|| RuleSet::compile(black_box(&cfg)).expect("valid"))
    });
    g2.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
