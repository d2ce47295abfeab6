//! Record generators shared by the sink tests and the sink benchmark (not a stable API).

use std::sync::Arc;

use oee_core::normalize::units::Unit;
use oee_core::normalize::{Asset, SignalTag, SignalType, SourceRef};
use serde_json::json;

use super::record::{EventKind, EventRow, FaultRow, OeeWindowRow, Record, TelemetryRow};

/// `n` distinct tags over 10 machines, some analog with units, some raw with devices.
pub fn tags(n: usize) -> Vec<Arc<SignalTag>> {
    (0..n)
        .map(|i| {
            let machine = format!("m{:02}", i % 10);
            let (signal_type, unit) = match i % 4 {
                0 => (SignalType::CounterTotal, Some("count")),
                1 => (
                    SignalType::Analog(Arc::from("temperature")),
                    Unit::parse("degC").map(|u| u.name),
                ),
                2 => (SignalType::StateRunning, None),
                _ => (SignalType::Raw, None),
            };
            Arc::new(SignalTag {
                asset: Asset {
                    site_id: "site-a".into(),
                    line_id: format!("line-{}", i % 2),
                    machine_id: machine.clone(),
                    labels: Vec::new(),
                },
                signal_type,
                unit,
                source: SourceRef {
                    group: "plant".into(),
                    edge_node: format!("node-{}", i % 5),
                    device: (i % 3 != 0).then(|| machine.clone()),
                    metric: format!("metric/{i}"),
                },
                rule: None,
                fault_code: None,
            })
        })
        .collect()
}

/// Telemetry row number `i` (values include NaN and ±Inf every few rows, text every 7th).
pub fn telemetry(tags: &[Arc<SignalTag>], i: u64) -> TelemetryRow {
    let value = match i % 97 {
        13 => Some(f64::NAN),
        29 => Some(f64::INFINITY),
        31 => Some(f64::NEG_INFINITY),
        7 | 14 | 21 => None,
        _ => Some(i as f64 * 0.5),
    };
    TelemetryRow {
        tag: tags[(i % tags.len() as u64) as usize].clone(),
        time_ms: 1_700_000_000_000 + i as i64,
        value,
        value_text: (value.is_none()).then(|| format!("text {i}")),
        quality: 192,
        is_historical: i.is_multiple_of(11),
        received_at_ms: 1_700_000_000_500 + i as i64,
        seq: Some((i % 256) as u8),
        bd_seq: Some(3),
        index: (i % 7) as u16,
        int_bits: if i.is_multiple_of(5) { 16 } else { 0 },
    }
}

pub fn event(i: u64) -> EventRow {
    EventRow {
        time_ms: 1_700_000_000_000 + i as i64,
        kind: EventKind::FaultTransition,
        site_id: Some("site-a".into()),
        line_id: Some("line-0".into()),
        machine_id: Some(format!("m{:02}", i % 10)),
        severity: Some((i % 4) as i32),
        id: format!("ev-{i}"),
        payload: json!({"i": i, "to": "ACTIVE"}),
    }
}

pub fn window(i: u64, revision: i32) -> OeeWindowRow {
    OeeWindowRow {
        scope: if i.is_multiple_of(2) {
            "machine"
        } else {
            "line"
        },
        site_id: "site-a".into(),
        line_id: "line-0".into(),
        machine_id: if i.is_multiple_of(2) {
            format!("m{:02}", i % 10)
        } else {
            String::new()
        },
        window_kind: "hour".into(),
        window_start_ms: 1_700_000_000_000 + 3_600_000 * i as i64,
        window_end_ms: 1_700_000_000_000 + 3_600_000 * (i as i64 + 1),
        planned_ms: 3_600_000,
        run_ms: 3_000_000 + revision as i64,
        setup_ms: 100_000,
        unknown_ms: 0,
        ideal_ms: 2_500_000.5,
        fully_productive_ms: 2_400_000.25,
        total_count: 1000 + revision as i64,
        good_count: 990,
        reject_count: 10,
        failures: 2,
        repair_ms: 60_000,
        availability: Some(0.83),
        performance: Some(0.9),
        quality: Some(0.99),
        oee: Some(0.74),
        mtbf_s: Some(1500.0),
        mttr_s: None,
        flags: vec!["partial".into()],
        revision,
    }
}

pub fn fault(i: u64, last_change_ms: i64, state: &str) -> FaultRow {
    FaultRow {
        id: format!("f-{i}"),
        site_id: "site-a".into(),
        line_id: "line-0".into(),
        machine_id: format!("m{:02}", i % 10),
        code: 100 + i as i64,
        state: state.into(),
        severity: 2,
        first_active_ms: 1_700_000_000_000,
        last_change_ms,
        resolved_ms: (state == "RESOLVED").then_some(last_change_ms),
        acknowledged_ms: None,
        acknowledged_by: None,
        occurrences: 1,
        flags: Vec::new(),
    }
}

/// A mixed stream: mostly telemetry, an event every 10th record, a window revision every 25th
/// and a fault change every 40th.
pub fn mixed(tags: &[Arc<SignalTag>], i: u64) -> Record {
    if i % 40 == 39 {
        Record::Fault(fault(i % 7, 1_700_000_000_000 + i as i64, "ACTIVE"))
    } else if i % 25 == 24 {
        Record::OeeWindow(window((i / 25) % 5, i as i32))
    } else if i % 10 == 9 {
        Record::Event(event(i))
    } else {
        Record::Telemetry(telemetry(tags, i))
    }
}
