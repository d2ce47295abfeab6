//! Fuzzes the Sparkplug host session state machine with sequences of messages.
//!
//! Input layout: one config byte, then records of
//! `[topic selector u8][time delta u16 LE][payload length u8][payload bytes]`.
//! Selector 0xF0.. = poll, 0xF8.. = connection lost, 0xFC.. = STATE; otherwise the low three
//! bits pick the verb, bit 3 the edge node, bits 4-5 the device. Every step checks the
//! configured limits and that `poll` leaves nothing due.
//!
//! Run: `fuzz/seed-corpus.sh`, then `cargo +nightly fuzz run host_session corpus/host_session`
//! (the seeds in `corpus-seed/host_session` wrap Tahu vectors in records: NBIRTH, NDATA, poll,
//! NDEATH, connection loss).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sparkplug::{Host, HostConfig, RebirthMode};

const VERBS: [&str; 8] = ["NBIRTH", "NDEATH", "NDATA", "NCMD", "DBIRTH", "DDEATH", "DDATA", "DCMD"];

fuzz_target!(|data: &[u8]| {
    let Some((&cfg_byte, mut rest)) = data.split_first() else {
        return;
    };
    let cfg = HostConfig {
        reorder_timeout_ms: u64::from(cfg_byte & 0x3) * 1000,
        rebirth_mode: [RebirthMode::Off, RebirthMode::Active, RebirthMode::Primary, RebirthMode::Primary]
            [usize::from((cfg_byte >> 2) & 0x3)],
        rebirth_throttle_ms: u64::from((cfg_byte >> 4) & 0x3) * 2000,
        global_rebirths_per_second: u32::from(cfg_byte >> 6),
        max_nodes: 2,
        max_devices_per_node: 3,
        max_metrics_per_node: 64,
        max_buffered_per_node: 8,
        rebirth_on_malformed: cfg_byte & 0x80 != 0,
    };
    let mut host = Host::new(cfg.clone());
    let mut now = 0u64;
    let mut out = Vec::new();
    while let [sel, t0, t1, len, tail @ ..] = rest {
        let n = usize::from(*len).min(tail.len());
        let (payload, next) = tail.split_at(n);
        rest = next;
        now += u64::from(u16::from_le_bytes([*t0, *t1]));
        match *sel {
            0xF0..=0xF7 => {
                host.poll(now, &mut out);
                assert!(host.next_deadline().is_none_or(|d| d > now));
            }
            0xF8..=0xFB => host.connection_lost(now, &mut out),
            0xFC..=0xFF => host.handle("spBv1.0/STATE/h", payload, now, &mut out),
            s => {
                let verb = VERBS[usize::from(s & 0x7)];
                let edge = if s & 0x8 == 0 { "E0" } else { "E1" };
                let topic = if verb.starts_with('D') {
                    format!("spBv1.0/G/{verb}/{edge}/D{}", (s >> 4) & 0x3)
                } else {
                    format!("spBv1.0/G/{verb}/{edge}")
                };
                host.handle(&topic, payload, now, &mut out);
            }
        }
        let u = host.usage();
        assert!(u.nodes <= cfg.max_nodes);
        assert!(u.max_devices_in_a_node <= cfg.max_devices_per_node);
        assert!(u.max_metrics_in_a_node <= cfg.max_metrics_per_node);
        assert!(u.max_buffered_in_a_node <= cfg.max_buffered_per_node);
        out.clear();
    }
});
