//! The spool's binary encoding of a [`Batch`]. Little-endian, length-prefixed strings, one tag
//! table per batch (telemetry rows refer to it by index, so the identity strings of a metric are
//! written once per batch). NaN and ±Inf values survive exactly (f64 bits). Version byte first,
//! so a later format can still read old spools.

use std::collections::HashMap;
use std::sync::Arc;

use oee_core::normalize::units::Unit;
use oee_core::normalize::{Asset, SignalTag, SignalType, SourceRef};

use super::batch::{Batch, BatchId};
use super::record::{EventKind, EventRow, FaultRow, OeeWindowRow, Record, TelemetryRow};

/// 2 added each telemetry row's metric index and integer width; version 1 spools still read.
const VERSION: u8 = 2;

#[derive(Debug, thiserror::Error)]
#[error("spooled batch cannot be decoded: {0}")]
pub struct CodecError(pub String);

pub fn encode(batch: &Batch, out: &mut Vec<u8>) {
    let mut w = W(out);
    w.u8(VERSION);
    w.i64(batch.id.writer);
    w.i64(batch.id.seq);
    // Tag table, by Arc identity.
    let mut tags: HashMap<*const SignalTag, u32> = HashMap::new();
    let mut order: Vec<&SignalTag> = Vec::new();
    for r in &batch.records {
        if let Record::Telemetry(t) = r {
            let p = Arc::as_ptr(&t.tag);
            if let std::collections::hash_map::Entry::Vacant(v) = tags.entry(p) {
                v.insert(order.len() as u32);
                order.push(&t.tag);
            }
        }
    }
    w.u32(order.len() as u32);
    for t in order {
        w.str(&t.asset.site_id);
        w.str(&t.asset.line_id);
        w.str(&t.asset.machine_id);
        w.str(t.signal_type.as_str());
        w.opt_str(t.unit);
        w.str(&t.source.group);
        w.str(&t.source.edge_node);
        w.opt_str(t.source.device.as_deref());
        w.str(&t.source.metric);
    }
    w.u32(batch.records.len() as u32);
    for r in &batch.records {
        match r {
            Record::Telemetry(t) => {
                w.u8(0);
                w.u32(tags[&Arc::as_ptr(&t.tag)]);
                w.i64(t.time_ms);
                w.opt_f64(t.value);
                w.opt_str(t.value_text.as_deref());
                w.i32(t.quality);
                w.u8(t.is_historical as u8);
                w.i64(t.received_at_ms);
                match t.seq {
                    Some(s) => {
                        w.u8(1);
                        w.u8(s)
                    }
                    None => w.u8(0),
                }
                match t.bd_seq {
                    Some(s) => {
                        w.u8(1);
                        w.u64(s)
                    }
                    None => w.u8(0),
                }
                w.u16(t.index);
                w.u8(t.int_bits);
            }
            Record::Event(e) => {
                w.u8(1);
                w.i64(e.time_ms);
                w.str(e.kind.as_str());
                w.opt_str(e.site_id.as_deref());
                w.opt_str(e.line_id.as_deref());
                w.opt_str(e.machine_id.as_deref());
                w.opt_i32(e.severity);
                w.str(&e.id);
                w.str(&e.payload.to_string());
            }
            Record::OeeWindow(o) => {
                w.u8(2);
                w.str(o.scope);
                w.str(&o.site_id);
                w.str(&o.line_id);
                w.str(&o.machine_id);
                w.str(&o.window_kind);
                for v in [
                    o.window_start_ms,
                    o.window_end_ms,
                    o.planned_ms,
                    o.run_ms,
                    o.setup_ms,
                    o.unknown_ms,
                ] {
                    w.i64(v);
                }
                w.f64(o.ideal_ms);
                w.f64(o.fully_productive_ms);
                for v in [
                    o.total_count,
                    o.good_count,
                    o.reject_count,
                    o.failures,
                    o.repair_ms,
                ] {
                    w.i64(v);
                }
                for v in [
                    o.availability,
                    o.performance,
                    o.quality,
                    o.oee,
                    o.mtbf_s,
                    o.mttr_s,
                ] {
                    w.opt_f64(v);
                }
                w.strs(&o.flags);
                w.i32(o.revision);
            }
            Record::Fault(f) => {
                w.u8(3);
                w.str(&f.id);
                w.str(&f.site_id);
                w.str(&f.line_id);
                w.str(&f.machine_id);
                w.i64(f.code);
                w.str(&f.state);
                w.i32(f.severity);
                w.i64(f.first_active_ms);
                w.i64(f.last_change_ms);
                w.opt_i64(f.resolved_ms);
                w.opt_i64(f.acknowledged_ms);
                w.opt_str(f.acknowledged_by.as_deref());
                w.i64(f.occurrences);
                w.strs(&f.flags);
            }
        }
    }
}

pub fn decode(bytes: &[u8]) -> Result<Batch, CodecError> {
    let mut r = R { b: bytes, pos: 0 };
    let version = r.u8()?;
    if !(1..=VERSION).contains(&version) {
        return Err(CodecError(format!("unknown format version {version}")));
    }
    let id = BatchId {
        writer: r.i64()?,
        seq: r.i64()?,
    };
    let ntags = r.u32()? as usize;
    let mut tags = Vec::with_capacity(ntags.min(1 << 16));
    for _ in 0..ntags {
        let site_id = r.string()?;
        let line_id = r.string()?;
        let machine_id = r.string()?;
        let st = r.string()?;
        let unit = r.opt_string()?;
        let group = r.string()?;
        let edge_node = r.string()?;
        let device = r.opt_string()?;
        let metric = r.string()?;
        let signal_type = if st == "raw" {
            SignalType::Raw
        } else {
            SignalType::parse(&st).unwrap_or_else(|_| SignalType::Analog(Arc::from(st.as_str())))
        };
        tags.push(Arc::new(SignalTag {
            asset: Asset {
                site_id,
                line_id,
                machine_id,
                labels: Vec::new(),
            },
            signal_type,
            // Units are canonical names from the unit table, so the lookup gives them back.
            unit: unit.as_deref().and_then(Unit::parse).map(|u| u.name),
            source: SourceRef {
                group,
                edge_node,
                device,
                metric,
            },
            rule: None,
            fault_code: None,
        }));
    }
    let n = r.u32()? as usize;
    let mut records = Vec::with_capacity(n.min(1 << 20));
    for _ in 0..n {
        let rec = match r.u8()? {
            0 => {
                let ti = r.u32()? as usize;
                let tag = tags
                    .get(ti)
                    .cloned()
                    .ok_or_else(|| CodecError(format!("tag index {ti} out of range")))?;
                Record::Telemetry(TelemetryRow {
                    tag,
                    time_ms: r.i64()?,
                    value: r.opt_f64()?,
                    value_text: r.opt_string()?,
                    quality: r.i32()?,
                    is_historical: r.u8()? != 0,
                    received_at_ms: r.i64()?,
                    seq: if r.u8()? != 0 { Some(r.u8()?) } else { None },
                    bd_seq: if r.u8()? != 0 { Some(r.u64()?) } else { None },
                    index: if version >= 2 { r.u16()? } else { 0 },
                    int_bits: if version >= 2 { r.u8()? } else { 0 },
                })
            }
            1 => {
                let time_ms = r.i64()?;
                let k = r.string()?;
                let kind = event_kind(&k)
                    .ok_or_else(|| CodecError(format!("unknown event type `{k}`")))?;
                Record::Event(EventRow {
                    time_ms,
                    kind,
                    site_id: r.opt_string()?,
                    line_id: r.opt_string()?,
                    machine_id: r.opt_string()?,
                    severity: r.opt_i32()?,
                    id: r.string()?,
                    payload: serde_json::from_str(&r.string()?)
                        .map_err(|e| CodecError(format!("event payload: {e}")))?,
                })
            }
            2 => {
                let scope = match r.string()?.as_str() {
                    "machine" => "machine",
                    "line" => "line",
                    s => return Err(CodecError(format!("unknown window scope `{s}`"))),
                };
                Record::OeeWindow(OeeWindowRow {
                    scope,
                    site_id: r.string()?,
                    line_id: r.string()?,
                    machine_id: r.string()?,
                    window_kind: r.string()?,
                    window_start_ms: r.i64()?,
                    window_end_ms: r.i64()?,
                    planned_ms: r.i64()?,
                    run_ms: r.i64()?,
                    setup_ms: r.i64()?,
                    unknown_ms: r.i64()?,
                    ideal_ms: r.f64()?,
                    fully_productive_ms: r.f64()?,
                    total_count: r.i64()?,
                    good_count: r.i64()?,
                    reject_count: r.i64()?,
                    failures: r.i64()?,
                    repair_ms: r.i64()?,
                    availability: r.opt_f64()?,
                    performance: r.opt_f64()?,
                    quality: r.opt_f64()?,
                    oee: r.opt_f64()?,
                    mtbf_s: r.opt_f64()?,
                    mttr_s: r.opt_f64()?,
                    flags: r.strings()?,
                    revision: r.i32()?,
                })
            }
            3 => Record::Fault(FaultRow {
                id: r.string()?,
                site_id: r.string()?,
                line_id: r.string()?,
                machine_id: r.string()?,
                code: r.i64()?,
                state: r.string()?,
                severity: r.i32()?,
                first_active_ms: r.i64()?,
                last_change_ms: r.i64()?,
                resolved_ms: r.opt_i64()?,
                acknowledged_ms: r.opt_i64()?,
                acknowledged_by: r.opt_string()?,
                occurrences: r.i64()?,
                flags: r.strings()?,
            }),
            k => return Err(CodecError(format!("unknown record kind {k}"))),
        };
        records.push(rec);
    }
    if r.pos != bytes.len() {
        return Err(CodecError("trailing bytes".into()));
    }
    Ok(Batch { id, records })
}

pub fn event_kind(s: &str) -> Option<EventKind> {
    use EventKind::*;
    [
        NodeOnline,
        NodeOffline,
        DeviceOnline,
        DeviceOffline,
        RebirthRequested,
        FaultTransition,
        OeeWindow,
        SignalBad,
    ]
    .into_iter()
    .find(|k| k.as_str() == s)
}

struct W<'a>(&'a mut Vec<u8>);

impl W<'_> {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn i32(&mut self, v: i32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn i64(&mut self, v: i64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn f64(&mut self, v: f64) {
        self.u64(v.to_bits());
    }
    fn str(&mut self, s: &str) {
        self.u32(s.len() as u32);
        self.0.extend_from_slice(s.as_bytes());
    }
    fn opt_str(&mut self, s: Option<&str>) {
        match s {
            Some(s) => {
                self.u8(1);
                self.str(s)
            }
            None => self.u8(0),
        }
    }
    fn opt_f64(&mut self, v: Option<f64>) {
        match v {
            Some(v) => {
                self.u8(1);
                self.f64(v)
            }
            None => self.u8(0),
        }
    }
    fn opt_i64(&mut self, v: Option<i64>) {
        match v {
            Some(v) => {
                self.u8(1);
                self.i64(v)
            }
            None => self.u8(0),
        }
    }
    fn opt_i32(&mut self, v: Option<i32>) {
        match v {
            Some(v) => {
                self.u8(1);
                self.i32(v)
            }
            None => self.u8(0),
        }
    }
    fn strs(&mut self, v: &[String]) {
        self.u32(v.len() as u32);
        for s in v {
            self.str(s);
        }
    }
}

struct R<'a> {
    b: &'a [u8],
    pos: usize,
}

impl R<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], CodecError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.b.len())
            .ok_or_else(|| CodecError("truncated".into()))?;
        let s = &self.b[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn arr<const N: usize>(&mut self) -> Result<[u8; N], CodecError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, CodecError> {
        Ok(self.arr::<1>()?[0])
    }
    fn u16(&mut self) -> Result<u16, CodecError> {
        Ok(u16::from_le_bytes(self.arr()?))
    }
    fn u32(&mut self) -> Result<u32, CodecError> {
        Ok(u32::from_le_bytes(self.arr()?))
    }
    fn i32(&mut self) -> Result<i32, CodecError> {
        Ok(i32::from_le_bytes(self.arr()?))
    }
    fn u64(&mut self) -> Result<u64, CodecError> {
        Ok(u64::from_le_bytes(self.arr()?))
    }
    fn i64(&mut self) -> Result<i64, CodecError> {
        Ok(i64::from_le_bytes(self.arr()?))
    }
    fn f64(&mut self) -> Result<f64, CodecError> {
        Ok(f64::from_bits(self.u64()?))
    }
    fn string(&mut self) -> Result<String, CodecError> {
        let n = self.u32()? as usize;
        let b = self.take(n)?;
        String::from_utf8(b.to_vec()).map_err(|_| CodecError("invalid UTF-8".into()))
    }
    fn flag(&mut self) -> Result<bool, CodecError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            f => Err(CodecError(format!("bad option flag {f}"))),
        }
    }
    fn opt_string(&mut self) -> Result<Option<String>, CodecError> {
        Ok(if self.flag()? {
            Some(self.string()?)
        } else {
            None
        })
    }
    fn opt_f64(&mut self) -> Result<Option<f64>, CodecError> {
        Ok(if self.flag()? {
            Some(self.f64()?)
        } else {
            None
        })
    }
    fn opt_i64(&mut self) -> Result<Option<i64>, CodecError> {
        Ok(if self.flag()? {
            Some(self.i64()?)
        } else {
            None
        })
    }
    fn opt_i32(&mut self) -> Result<Option<i32>, CodecError> {
        Ok(if self.flag()? {
            Some(self.i32()?)
        } else {
            None
        })
    }
    fn strings(&mut self) -> Result<Vec<String>, CodecError> {
        let n = self.u32()? as usize;
        let mut v = Vec::with_capacity(n.min(1024));
        for _ in 0..n {
            v.push(self.string()?);
        }
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::testdata;

    fn same(a: &Record, b: &Record) -> bool {
        // NaN != NaN: compare the encodings' JSON forms, which spell NaN out.
        crate::sink::jsonl::record_json(a) == crate::sink::jsonl::record_json(b)
    }

    #[test]
    fn batches_round_trip_including_non_finite_values() {
        let tags = testdata::tags(20);
        let records: Vec<Record> = (0..500).map(|i| testdata::mixed(&tags, i)).collect();
        let batch = Batch {
            id: BatchId {
                writer: -42,
                seq: 7,
            },
            records,
        };
        let mut bytes = Vec::new();
        encode(&batch, &mut bytes);
        let back = decode(&bytes).unwrap();
        assert_eq!(back.id, batch.id);
        assert_eq!(back.records.len(), batch.records.len());
        for (a, b) in batch.records.iter().zip(&back.records) {
            assert!(same(a, b), "{a:?} != {b:?}");
        }
        // Tags are shared again after decoding.
        match (&back.records[0], &back.records[20]) {
            (Record::Telemetry(a), Record::Telemetry(b)) => assert!(Arc::ptr_eq(&a.tag, &b.tag)),
            other => panic!("expected telemetry rows, got {other:?}"),
        }
    }

    #[test]
    fn version_1_spools_still_decode_without_index_and_width() {
        let tags = testdata::tags(1);
        let Record::Telemetry(mut row) = testdata::mixed(&tags, 5) else {
            panic!("testdata::mixed(_, 5) is a telemetry row");
        };
        (row.index, row.int_bits) = (3, 16);
        let batch = Batch {
            id: BatchId { writer: 1, seq: 2 },
            records: vec![Record::Telemetry(row.clone())],
        };
        let mut bytes = Vec::new();
        encode(&batch, &mut bytes);
        // Version 1 is version 2 without the row's trailing index (u16) and width (u8).
        let mut v1 = vec![1];
        v1.extend_from_slice(&bytes[1..bytes.len() - 3]);
        let back = decode(&v1).unwrap();
        let Record::Telemetry(old) = &back.records[0] else {
            panic!("{back:?}")
        };
        assert_eq!((old.index, old.int_bits), (0, 0));
        assert_eq!(old.time_ms, row.time_ms);
        assert!(decode(&[3]).is_err());
    }

    #[test]
    fn truncated_or_garbage_input_is_an_error_not_a_panic() {
        let tags = testdata::tags(3);
        let batch = Batch {
            id: BatchId { writer: 1, seq: 1 },
            records: (0..50).map(|i| testdata::mixed(&tags, i)).collect(),
        };
        let mut bytes = Vec::new();
        encode(&batch, &mut bytes);
        for cut in [0, 1, 10, bytes.len() / 2, bytes.len() - 1] {
            assert!(decode(&bytes[..cut]).is_err());
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode(&longer).is_err());
    }
}
