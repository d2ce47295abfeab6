//! The JSON-lines sink: one JSON object per record and line, with a `stream` field
//! (`telemetry`, `events`, `oee_windows`, `faults`), to a file (appended) or stdout. Times are
//! RFC 3339 UTC with milliseconds; non-finite values are the strings `NaN`, `Infinity`,
//! `-Infinity`. Each batch is flushed when written. There is no ledger: after a crash between a
//! write and its acknowledgement a batch can appear twice (at-least-once); readers that care
//! deduplicate on the keys documented in docs/tables.md.

use std::fs::OpenOptions;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use serde_json::{Map, Value, json};

use super::SinkError;
use super::batch::{Batch, split};
use super::record::Record;
use super::runner::{WriteError, WriteOutcome};

pub struct JsonlWriter {
    out: BufWriter<Box<dyn Write + Send>>,
    line: Vec<u8>,
}

impl JsonlWriter {
    /// `None` = stdout.
    pub fn open(path: Option<&Path>) -> Result<JsonlWriter, SinkError> {
        let out: Box<dyn Write + Send> = match path {
            None => Box::new(io::stdout()),
            Some(p) => Box::new(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .map_err(|source| SinkError::Jsonl {
                        path: p.display().to_string(),
                        source,
                    })?,
            ),
        };
        Ok(JsonlWriter {
            out: BufWriter::with_capacity(256 * 1024, out),
            line: Vec::with_capacity(512),
        })
    }

    pub fn write(&mut self, batch: &Batch) -> Result<WriteOutcome, WriteError> {
        for r in &batch.records {
            self.line.clear();
            serde_json::to_writer(&mut self.line, &record_json(r))
                .map_err(WriteError::retryable)?;
            self.line.push(b'\n');
            self.out
                .write_all(&self.line)
                .map_err(WriteError::retryable)?;
        }
        self.out.flush().map_err(WriteError::retryable)?;
        Ok(WriteOutcome::Written(split(&batch.records).counts()))
    }

    pub fn flush(&mut self) {
        let _ = self.out.flush();
    }
}

/// A float as JSON: numbers when finite, else the strings `NaN`, `Infinity`, `-Infinity`.
fn num(v: Option<f64>) -> Value {
    match v {
        None => Value::Null,
        Some(v) if v.is_finite() => json!(v),
        Some(v) if v.is_nan() => json!("NaN"),
        Some(v) if v > 0.0 => json!("Infinity"),
        Some(_) => json!("-Infinity"),
    }
}

/// One record as the JSON object of its line (also used for dead-letter files).
pub fn record_json(r: &Record) -> Value {
    let mut m = Map::new();
    match r {
        Record::Telemetry(t) => {
            let tag = &t.tag;
            m.insert("stream".into(), json!("telemetry"));
            m.insert("time".into(), json!(rfc3339(t.time_ms)));
            m.insert("site_id".into(), json!(tag.asset.site_id));
            m.insert("line_id".into(), json!(tag.asset.line_id));
            m.insert("machine_id".into(), json!(tag.asset.machine_id));
            m.insert("signal_type".into(), json!(tag.signal_type.as_str()));
            m.insert("value".into(), num(t.value));
            m.insert("value_text".into(), json!(t.value_text));
            m.insert("unit".into(), json!(tag.unit));
            m.insert("quality".into(), json!(t.quality));
            m.insert("sp_group".into(), json!(tag.source.group));
            m.insert("sp_edge_node".into(), json!(tag.source.edge_node));
            m.insert("sp_device".into(), json!(tag.source.device));
            m.insert("sp_metric".into(), json!(tag.source.metric));
            m.insert("is_historical".into(), json!(t.is_historical));
            m.insert("received_at".into(), json!(rfc3339(t.received_at_ms)));
            m.insert("order_key".into(), json!(t.order_key()));
            m.insert(
                "int_bits".into(),
                json!((t.int_bits != 0).then_some(t.int_bits)),
            );
        }
        Record::Event(e) => {
            m.insert("stream".into(), json!("events"));
            m.insert("time".into(), json!(rfc3339(e.time_ms)));
            m.insert("event_type".into(), json!(e.kind.as_str()));
            m.insert("site_id".into(), json!(e.site_id));
            m.insert("line_id".into(), json!(e.line_id));
            m.insert("machine_id".into(), json!(e.machine_id));
            m.insert("severity".into(), json!(e.severity));
            m.insert("event_id".into(), json!(e.id));
            m.insert("payload".into(), e.payload.clone());
        }
        Record::OeeWindow(o) => {
            m.insert("stream".into(), json!("oee_windows"));
            m.insert("scope".into(), json!(o.scope));
            m.insert("site_id".into(), json!(o.site_id));
            m.insert("line_id".into(), json!(o.line_id));
            m.insert("machine_id".into(), json!(o.machine_id));
            m.insert("window_kind".into(), json!(o.window_kind));
            m.insert("window_start".into(), json!(rfc3339(o.window_start_ms)));
            m.insert("window_end".into(), json!(rfc3339(o.window_end_ms)));
            m.insert("planned_ms".into(), json!(o.planned_ms));
            m.insert("run_ms".into(), json!(o.run_ms));
            m.insert("setup_ms".into(), json!(o.setup_ms));
            m.insert("unknown_ms".into(), json!(o.unknown_ms));
            m.insert("ideal_ms".into(), num(Some(o.ideal_ms)));
            m.insert(
                "fully_productive_ms".into(),
                num(Some(o.fully_productive_ms)),
            );
            m.insert("total_count".into(), json!(o.total_count));
            m.insert("good_count".into(), json!(o.good_count));
            m.insert("reject_count".into(), json!(o.reject_count));
            m.insert("failures".into(), json!(o.failures));
            m.insert("repair_ms".into(), json!(o.repair_ms));
            m.insert("availability".into(), num(o.availability));
            m.insert("performance".into(), num(o.performance));
            m.insert("quality".into(), num(o.quality));
            m.insert("oee".into(), num(o.oee));
            m.insert("mtbf_s".into(), num(o.mtbf_s));
            m.insert("mttr_s".into(), num(o.mttr_s));
            m.insert("flags".into(), json!(o.flags));
            m.insert("revision".into(), json!(o.revision));
        }
        Record::Fault(f) => {
            m.insert("stream".into(), json!("faults"));
            m.insert("fault_id".into(), json!(f.id));
            m.insert("site_id".into(), json!(f.site_id));
            m.insert("line_id".into(), json!(f.line_id));
            m.insert("machine_id".into(), json!(f.machine_id));
            m.insert("code".into(), json!(f.code));
            m.insert("state".into(), json!(f.state));
            m.insert("severity".into(), json!(f.severity));
            m.insert("first_active".into(), json!(rfc3339(f.first_active_ms)));
            m.insert("last_change".into(), json!(rfc3339(f.last_change_ms)));
            m.insert("resolved_at".into(), json!(f.resolved_ms.map(rfc3339)));
            m.insert(
                "acknowledged_at".into(),
                json!(f.acknowledged_ms.map(rfc3339)),
            );
            m.insert("acknowledged_by".into(), json!(f.acknowledged_by));
            m.insert("occurrences".into(), json!(f.occurrences));
            m.insert("flags".into(), json!(f.flags));
        }
    }
    Value::Object(m)
}

/// Epoch milliseconds as `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC). An instant outside the years
/// −9999…9999 (which no real sample has) is written as its plain number of milliseconds.
pub fn rfc3339(ms: i64) -> String {
    match jiff::Timestamp::from_millisecond(ms) {
        Ok(t) => t.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        Err(_) => ms.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59.999Z");
    }

    #[test]
    fn non_finite_values_are_strings() {
        assert_eq!(num(Some(f64::NAN)), json!("NaN"));
        assert_eq!(num(Some(f64::INFINITY)), json!("Infinity"));
        assert_eq!(num(Some(f64::NEG_INFINITY)), json!("-Infinity"));
        assert_eq!(num(Some(1.5)), json!(1.5));
        assert_eq!(num(None), Value::Null);
    }
}
