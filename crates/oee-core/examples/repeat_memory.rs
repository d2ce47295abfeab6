//! Memory of the engine under a gateway that publishes every tag at a fixed period: `N`
//! machines (default 20, first argument) send their state, ideal cycle time, fault code and
//! one fault flag 20 times a second for one simulated hour, nearly always the same values (the
//! state changes every 10 minutes). Prints what the engine retains and the process's resident
//! memory before and after (Linux `/proc/self/status`; the workspace forbids `unsafe`, so no
//! counting allocator). Run with
//! `MALLOC_ARENA_MAX=1 cargo run --release -p oee-core --example repeat_memory -- 20`.

use oee_core::faults::FaultParams;
use oee_core::types::{IdealCycle, MachineId, Ms};
use oee_core::windows::{OeeEngine, OeeInput, OeeParams, StateValue};

const T0: Ms = 1_736_121_600_000;
const PERIOD_MS: Ms = 50;
const SECONDS: i64 = 3600;

/// `VmRSS` and `VmHWM` in kB (0 when not on Linux).
fn rss_kb() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20);
    let ids: Vec<MachineId> = (0..n)
        .map(|i| MachineId::new("plant", "line", &format!("m{i:03}")))
        .collect();
    let (rss0, _) = rss_kb();
    let mut e = OeeEngine::new(OeeParams::default(), FaultParams::default());
    let mut out = Vec::new();
    let mut inputs = 0u64;
    for k in 0..SECONDS * 1000 / PERIOD_MS {
        let ts = T0 + k * PERIOD_MS;
        // Sparkplug-like tie-break: bdSeq << 24 | seq << 16 | metric index.
        let seq = |idx: u64| 1 << 24 | (k as u64 % 256) << 16 | idx;
        let running = (k * PERIOD_MS / 600_000) % 2 == 0;
        for id in &ids {
            for input in [
                OeeInput::State {
                    machine: id.clone(),
                    ts_ms: ts,
                    seq: seq(0),
                    value: StateValue::Running(running),
                },
                OeeInput::IdealCycle {
                    machine: id.clone(),
                    ts_ms: ts,
                    seq: seq(1),
                    cycle: IdealCycle::from_millis(2000),
                },
                OeeInput::FaultCode {
                    machine: id.clone(),
                    code: 0,
                    ts_ms: ts,
                    seq: seq(2),
                },
                OeeInput::Fault {
                    machine: id.clone(),
                    code: 7,
                    active: false,
                    ts_ms: ts,
                    seq: seq(3),
                    severity: None,
                },
            ] {
                e.push(&input, &mut out);
                inputs += 1;
            }
        }
        if (k * PERIOD_MS) % 1000 == 0 {
            e.advance_watermark(ts, &mut out);
            out.clear();
        }
    }
    let (rss1, hwm) = rss_kb();
    let r = e.retained();
    println!(
        "machines {n}, inputs pushed {inputs}, retained: inputs {}, slices {}, windows {}",
        r.inputs, r.slices, r.windows
    );
    println!(
        "RSS before {rss0} kB, after {rss1} kB (+{} kB, {:.1} B per pushed input), peak {hwm} kB",
        rss1.saturating_sub(rss0),
        rss1.saturating_sub(rss0) as f64 * 1024.0 / inputs as f64
    );
    std::hint::black_box(&e);
}
