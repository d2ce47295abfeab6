//! seq numbers that are behind the expected one: a loss of 128 or more messages (a burst dropped
//! by an overloaded broker), a late message of a given-up gap, and a duplicate. The session is
//! the standard NBIRTH (seq 0) and DBIRTH of device "D" (seq 1) followed by DDATA number `i`
//! (2, 3, …): seq `i mod 256`, payload timestamp `2000 + i`, `Speed` = `i`.

mod common;

use common::*;
use sparkplug::{Host, HostConfig, HostEvent, RebirthReason, RejectReason, Value};

/// DDATA number `i` of the session.
fn ddata(i: u64) -> Vec<u8> {
    payload(
        Some(i % 256),
        Some(2000 + i),
        vec![by_alias(10, Value::Float(i as f32))],
    )
}

fn send(h: &mut Host, i: u64) -> Vec<HostEvent> {
    feed(h, &topic("DDATA", Some("D")), &ddata(i), 10_000 + i)
}

/// A session with DDATA 2..=`k` applied (`k` = 1: only the births).
fn after(k: u64) -> Host {
    let mut h = online_host(HostConfig::default());
    for i in 2..=k {
        send(&mut h, i);
    }
    h
}

/// The `Speed` values of the samples in `events`, with their late flags.
fn speeds(events: &[HostEvent]) -> Vec<(u64, bool)> {
    samples(events)
        .iter()
        .filter(|s| &*s.name == "Speed")
        .filter_map(|s| match s.value {
            Some(Value::Float(v)) => Some((v as u64, s.flags.late)),
            _ => None,
        })
        .collect()
}

/// After DDATA 2..=`k`, `lost` messages are lost; the next and three successors arrive. Checks
/// that this counts as one seq gap with one rebirth request and that all four are applied as
/// current data, and returns the host.
fn assert_loss_is_a_gap(k: u64, lost: u64) -> Host {
    let mut h = after(k);
    let first = k + 1 + lost;
    let mut events = Vec::new();
    for i in first..first + 4 {
        events.extend(send(&mut h, i));
    }
    let ctx = format!("k {k}, lost {lost}");
    let applied: Vec<(u64, bool)> = (first..first + 4).map(|i| (i, false)).collect();
    assert_eq!(speeds(&events), applied, "{ctx}");
    let r = rebirths(&events);
    assert_eq!(r.len(), 1, "{ctx}");
    assert_eq!(
        r.first().map(|r| r.reason),
        Some(RebirthReason::SequenceGap),
        "{ctx}"
    );
    let c = h.counters();
    assert_eq!((c.seq_gaps, c.seq_late), (1, 0), "{ctx}");
    assert_eq!(
        h.node(G, E).map(|n| (n.next_seq, n.buffered)),
        Some((((first + 4) % 256) as u8, 0)),
        "{ctx}"
    );
    // The live state follows the newest message.
    let live = h
        .metric(G, E, Some("D"), "Speed")
        .and_then(|m| m.last_timestamp);
    assert_eq!(live, Some(2000 + first + 3), "{ctx}");
    h
}

#[test]
fn loss_of_127_is_buffered_then_given_up_when_the_next_one_is_128_ahead() {
    let mut h = after(300);
    // 127 lost: the next one is 127 ahead and waits for the missing ones.
    let ev = send(&mut h, 301 + 127);
    assert!(speeds(&ev).is_empty());
    assert_eq!(h.node(G, E).map(|n| n.buffered), Some(1));
    // Its successor is 128 ahead, outside the reorder window: the gap is given up at once.
    let ev = send(&mut h, 301 + 128);
    assert_eq!(speeds(&ev), [(428, false), (429, false)]);
    assert_eq!(rebirths(&ev).len(), 1);
    assert_eq!(h.counters().seq_gaps, 1);
    assert_eq!(h.next_deadline(), None);
}

#[test]
fn loss_of_127_without_successors_is_a_gap_after_the_timeout() {
    let mut h = after(300);
    send(&mut h, 301 + 127);
    let ev = poll(&mut h, 20_000);
    assert_eq!(speeds(&ev), [(428, false)]);
    assert_eq!(rebirths(&ev).len(), 1);
    assert_eq!(h.counters().seq_gaps, 1);
}

#[test]
fn loss_of_128_is_a_gap() {
    assert_loss_is_a_gap(300, 128);
}

#[test]
fn loss_of_200_is_a_gap() {
    assert_loss_is_a_gap(300, 200);
}

#[test]
fn loss_of_255_is_a_gap() {
    // The next seq is the one of the last message received: not a duplicate, its timestamp is
    // newer.
    assert_loss_is_a_gap(300, 255);
}

#[test]
fn loss_of_300_is_a_gap_through_the_reorder_buffer() {
    // 300 = 256 + 44: the seq is 44 ahead, the ordinary gap path (seq cannot tell).
    let mut h = after(300);
    let ev = send(&mut h, 301 + 300);
    assert!(speeds(&ev).is_empty());
    let ev = poll(&mut h, 20_000);
    assert_eq!(speeds(&ev), [(601, false)]);
    assert_eq!(rebirths(&ev).len(), 1);
    assert_eq!(h.counters().seq_gaps, 1);
}

#[test]
fn loss_of_456_is_a_gap() {
    // 456 = 256 + 200: looks like a loss of 200.
    assert_loss_is_a_gap(300, 456);
}

#[test]
fn loss_of_128_to_255_right_after_the_births_is_a_gap() {
    for lost in [128, 200, 254, 255] {
        assert_loss_is_a_gap(1, lost);
    }
    assert_loss_is_a_gap(5, 250);
}

#[test]
fn loss_while_a_gap_is_open_applies_the_buffered_messages_first() {
    let mut h = after(10);
    // 11 is missing; 12 waits in the reorder buffer.
    send(&mut h, 12);
    assert_eq!(h.node(G, E).map(|n| n.buffered), Some(1));
    // Then 150 messages are lost: 163 is 152 "behind" 11.
    let ev = send(&mut h, 163);
    assert_eq!(speeds(&ev), [(12, false), (163, false)]);
    assert_eq!(rebirths(&ev).len(), 1);
    let c = h.counters();
    assert_eq!((c.seq_gaps, c.seq_late, c.reorder_buffered), (1, 0, 1));
    assert_eq!(
        h.node(G, E).map(|n| (n.next_seq, n.buffered)),
        Some((164, 0))
    );
    assert_eq!(h.next_deadline(), None);
}

#[test]
fn a_ddeath_after_a_loss_of_200_is_applied() {
    let mut h = after(300);
    let ddeath = payload(Some((301 + 200) % 256), Some(2000 + 501), vec![]);
    let ev = feed(&mut h, &topic("DDEATH", Some("D")), &ddeath, 20_000);
    assert_eq!(h.device_online(G, E, "D"), Some(false));
    assert!(rejects(&ev).is_empty());
    assert_eq!(h.counters().seq_gaps, 1);
}

#[test]
fn a_late_message_of_a_given_up_gap_is_still_late() {
    let mut h = after(10);
    // 11 is missing; 12 and 13 wait, the gap is given up.
    send(&mut h, 12);
    send(&mut h, 13);
    let ev = poll(&mut h, 20_000);
    assert_eq!(speeds(&ev), [(12, false), (13, false)]);
    for i in 14..=100 {
        send(&mut h, i);
    }
    // 11 arrives 90 messages later: applied, flagged late, no second gap or rebirth.
    let ev = send(&mut h, 11);
    assert_eq!(speeds(&ev), [(11, true)]);
    assert!(rebirths(&ev).is_empty());
    let c = h.counters();
    assert_eq!((c.seq_gaps, c.seq_late, c.rebirth_requests), (1, 1, 1));
    assert_eq!(h.node(G, E).map(|n| n.next_seq), Some(101));
    // The live state stays with the newest message.
    let live = h
        .metric(G, E, Some("D"), "Speed")
        .and_then(|m| m.last_timestamp);
    assert_eq!(live, Some(2100));
}

#[test]
fn a_late_message_arriving_twice_is_a_duplicate_the_second_time() {
    let mut h = after(10);
    send(&mut h, 12);
    poll(&mut h, 20_000);
    assert_eq!(speeds(&send(&mut h, 11)), [(11, true)]);
    let ev = send(&mut h, 11);
    assert!(samples(&ev).is_empty());
    assert_eq!(rejects(&ev), [&RejectReason::Duplicate(11)]);
    let c = h.counters();
    assert_eq!((c.seq_late, c.seq_duplicates, c.seq_gaps), (1, 1, 1));
}

#[test]
fn a_late_ddeath_of_a_given_up_gap_is_dropped() {
    let mut h = after(10);
    send(&mut h, 12);
    poll(&mut h, 20_000);
    let ddeath = payload(Some(11), Some(2011), vec![]);
    let ev = feed(&mut h, &topic("DDEATH", Some("D")), &ddeath, 20_001);
    assert!(matches!(
        rejects(&ev).as_slice(),
        [RejectReason::Late { seq: 11, .. }]
    ));
    assert_eq!(h.device_online(G, E, "D"), Some(true));
    assert_eq!(h.counters().seq_late, 1);
}

#[test]
fn a_duplicate_of_an_applied_message_is_dropped() {
    let mut h = after(300);
    // The last message again (1 behind) and one from 100 messages ago.
    for i in [300, 200] {
        let ev = send(&mut h, i);
        assert!(samples(&ev).is_empty(), "{i}");
        assert_eq!(
            rejects(&ev),
            [&RejectReason::Duplicate((i % 256) as u8)],
            "{i}"
        );
        assert!(rebirths(&ev).is_empty(), "{i}");
    }
    let c = h.counters();
    assert_eq!((c.seq_duplicates, c.seq_late, c.seq_gaps), (2, 0, 0));
    assert_eq!(h.node(G, E).map(|n| n.next_seq), Some((301 % 256) as u8));
    // The session goes on undisturbed.
    assert_eq!(speeds(&send(&mut h, 301)), [(301, false)]);
}

#[test]
fn a_message_of_the_previous_session_is_dropped_and_a_loss_after_the_new_birth_is_a_gap() {
    let mut h = after(300);
    // The node is born again (seq 0, payload timestamp 2400), its device too (seq 1).
    let birth = payload(
        Some(0),
        Some(2400),
        vec![
            bm("bdSeq", None, Value::UInt64(2)),
            bm("Temp", Some(1), Value::Double(20.0)),
            bm("Count", Some(2), Value::Int32(0)),
        ],
    );
    feed(&mut h, &topic("NBIRTH", None), &birth, 20_000);
    let dbirth = payload(
        Some(1),
        Some(2401),
        vec![bm("Speed", Some(10), Value::Float(1.5))],
    );
    feed(&mut h, &topic("DBIRTH", Some("D")), &dbirth, 20_001);
    // A straggler of the old session (seq 250, older than the birth): not data of the new one.
    let ev = send(&mut h, 250);
    assert!(samples(&ev).is_empty());
    assert_eq!(rejects(&ev), [&RejectReason::Duplicate(250)]);
    // The new session's DDATA number n is ddata(512 + n) (seq n, newer timestamps). 200 lost
    // after the births:
    let ev = send(&mut h, 512 + 202);
    assert_eq!(speeds(&ev), [(714, false)]);
    assert_eq!(rebirths(&ev).len(), 1);
    let c = h.counters();
    assert_eq!((c.seq_gaps, c.seq_late, c.seq_duplicates), (1, 0, 1));
}

/// DDATA number `i` without a payload timestamp (the spec requires one).
fn ddata_without_timestamp(i: u64) -> Vec<u8> {
    payload(
        Some(i % 256),
        None,
        vec![by_alias(10, Value::Float(i as f32))],
    )
}

#[test]
fn without_a_payload_timestamp_a_seq_behind_is_a_loss_unless_its_gap_was_given_up() {
    let mut h = after(300);
    let ev = feed(
        &mut h,
        &topic("DDATA", Some("D")),
        &ddata_without_timestamp(301 + 200),
        20_000,
    );
    assert_eq!(speeds(&ev), [(501, false)]);
    assert_eq!(rebirths(&ev).len(), 1);
    assert_eq!(h.counters().seq_gaps, 1);

    let mut h = after(10);
    send(&mut h, 12);
    poll(&mut h, 20_000);
    let ev = feed(
        &mut h,
        &topic("DDATA", Some("D")),
        &ddata_without_timestamp(11),
        20_001,
    );
    assert_eq!(speeds(&ev), [(11, true)]);
    assert_eq!((h.counters().seq_gaps, h.counters().seq_late), (1, 1));
}
