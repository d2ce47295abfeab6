//! Prometheus metrics: the registry served at `/metrics`.
//!
//! Stage timings are histograms recorded by the pipeline shards. Everything else is read from
//! the pipeline's counters at scrape time by a collector, so the hot path only bumps atomics.
//! Every name is described in docs/metrics.md; labels come from small fixed sets (message
//! types, host event names, shard numbers), never from tag or node names.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use sparkplug::MessageType;

use crate::pipeline::PipelineStats;
use crate::sink::SinkStats;

/// The `stage` label of `stream_processor_pipeline_duration_seconds`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StageLabel {
    pub stage: &'static str,
}

/// Per-message processing time by stage: `decode` (protobuf decode and the Sparkplug session),
/// `normalize` (the tag rules), `calculate` (OEE and faults), `total` (all of it, queueing for
/// the sink included).
#[derive(Clone, Debug)]
pub struct StageTimings {
    family: Family<StageLabel, Histogram>,
}

impl Default for StageTimings {
    fn default() -> Self {
        // 1 µs … ~0.26 s in ×4 steps.
        StageTimings {
            family: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(1e-6, 4.0, 10))
            }),
        }
    }
}

impl StageTimings {
    pub fn observe(&self, stage: &'static str, seconds: f64) {
        self.family
            .get_or_create(&StageLabel { stage })
            .observe(seconds);
    }
}

/// Builds the registry for `/metrics` over the pipeline's and the sink's counters and timings.
pub fn registry(stats: Arc<PipelineStats>, sink: Arc<SinkStats>) -> Registry {
    let mut registry = Registry::default();
    registry.register(
        "stream_processor_pipeline_duration_seconds",
        "Time to process one MQTT message, by stage",
        stats.timings.family.clone(),
    );
    registry.register_collector(Box::new(PipelineCollector(stats)));
    registry.register_collector(Box::new(SinkCollector(sink)));
    registry.register_collector(Box::new(AllocatorCollector));
    registry
}

/// jemalloc's figures at scrape time (absent without it).
#[derive(Debug)]
struct AllocatorCollector;

impl Collector for AllocatorCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        let Some(a) = crate::allocator::stats() else {
            return Ok(());
        };
        let i = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        gauge(
            &mut enc,
            "oee_stream_allocator_allocated_bytes",
            "Heap bytes the service holds (jemalloc stats.allocated)",
            i(a.allocated),
        )?;
        gauge(
            &mut enc,
            "oee_stream_allocator_resident_bytes",
            "Bytes in pages the allocator keeps resident, freed ones not yet returned included (jemalloc stats.resident)",
            i(a.resident),
        )?;
        gauge(
            &mut enc,
            "oee_stream_allocator_arenas",
            "Allocator arenas the threads are spread over (jemalloc opt.narenas)",
            i(a.arenas),
        )
    }
}

#[derive(Debug)]
struct PipelineCollector(Arc<PipelineStats>);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TypeLabel {
    r#type: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabel {
    event: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MachineLabel {
    machine_id: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FaultLabel {
    machine_id: String,
    severity: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ShardLabel {
    shard: String,
}

const MESSAGE_TYPES: [MessageType; 8] = [
    MessageType::NBirth,
    MessageType::NDeath,
    MessageType::NData,
    MessageType::NCmd,
    MessageType::DBirth,
    MessageType::DDeath,
    MessageType::DData,
    MessageType::DCmd,
];

fn counter(enc: &mut DescriptorEncoder, name: &str, help: &str, v: u64) -> std::fmt::Result {
    let c = ConstCounter::new(v);
    c.encode(enc.encode_descriptor(name, help, None, c.metric_type())?)
}

fn gauge(enc: &mut DescriptorEncoder, name: &str, help: &str, v: i64) -> std::fmt::Result {
    let g = ConstGauge::new(v);
    g.encode(enc.encode_descriptor(name, help, None, g.metric_type())?)
}

impl Collector for PipelineCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        let s = &*self.0;
        let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);

        let mut family = enc.encode_descriptor(
            "oee_stream_mqtt_messages",
            "Sparkplug messages received, by message type",
            None,
            prometheus_client::metrics::MetricType::Counter,
        )?;
        for t in MESSAGE_TYPES {
            ConstCounter::new(s.messages_of(t))
                .encode(family.encode_family(&TypeLabel { r#type: t.verb() })?)?;
        }

        let host = s.host_counters();
        counter(
            &mut enc,
            "oee_stream_decode_errors",
            "Payloads that are not valid Sparkplug B protobuf",
            host.decode_errors,
        )?;
        counter(
            &mut enc,
            "oee_stream_seq_gaps",
            "Sequence gaps given up (not filled within the reorder timeout, or 128 or more messages lost)",
            host.seq_gaps,
        )?;
        counter(
            &mut enc,
            "oee_stream_rebirths_sent",
            "Rebirth requests (NCMD) published",
            load(&s.rebirths_sent),
        )?;
        counter(
            &mut enc,
            "oee_stream_rebirths_dropped",
            "Rebirth requests not published (no session, or the MQTT client queue was full)",
            load(&s.rebirths_dropped),
        )?;
        counter(
            &mut enc,
            "oee_stream_unmapped_samples",
            "Samples of metrics that no tag mapping rule covers",
            load(&s.unmapped),
        )?;
        counter(
            &mut enc,
            "oee_stream_signals",
            "Normalized signals emitted",
            load(&s.signals),
        )?;
        counter(
            &mut enc,
            "oee_stream_records_out",
            "Records handed to the sink queue",
            load(&s.records_out),
        )?;
        counter(
            &mut enc,
            "oee_stream_invalid_topics",
            "Messages on topics that are not Sparkplug B topics",
            load(&s.invalid_topics),
        )?;
        counter(
            &mut enc,
            "oee_stream_mqtt_connection_losses",
            "Broker connections that were established and then lost",
            load(&s.connection_losses),
        )?;
        counter(
            &mut enc,
            "oee_stream_mqtt_connect_failures",
            "Connection attempts that failed",
            load(&s.connect_failures),
        )?;

        let mut family = enc.encode_descriptor(
            "oee_stream_host_events",
            "Sparkplug host session events, by event (see docs/sparkplug.md, Counters)",
            None,
            prometheus_client::metrics::MetricType::Counter,
        )?;
        for (event, v) in host.iter() {
            ConstCounter::new(v).encode(family.encode_family(&EventLabel { event })?)?;
        }

        let mut norm = oee_core::normalize::NormalizerStats::default();
        for sh in &s.shards {
            if let Ok(n) = sh.normalizer.lock() {
                norm.samples += n.samples;
                norm.emitted += n.emitted;
                norm.suppressed += n.suppressed;
                norm.bad_quality += n.bad_quality;
                norm.rejected += n.rejected;
                norm.unmapped += n.unmapped;
                norm.untracked += n.untracked;
                norm.unmapped_unlisted += n.unmapped_unlisted;
            }
        }
        let mut family = enc.encode_descriptor(
            "oee_stream_normalizer_samples",
            "Samples through the tag normalizer, by outcome: emitted, suppressed (deadband), bad_quality, rejected (value does not fit the rule), unmapped; untracked counts samples beyond processing.max_tracked_sources, unmapped_unlisted unmapped metrics of nodes beyond processing.unmapped.max_nodes (both also counted in an outcome)",
            None,
            prometheus_client::metrics::MetricType::Counter,
        )?;
        for (outcome, v) in [
            ("emitted", norm.emitted),
            ("suppressed", norm.suppressed),
            ("bad_quality", norm.bad_quality),
            ("rejected", norm.rejected),
            ("unmapped", norm.unmapped),
            ("untracked", norm.untracked),
            ("unmapped_unlisted", norm.unmapped_unlisted),
        ] {
            ConstCounter::new(v).encode(family.encode_family(&OutcomeLabel { outcome })?)?;
        }
        counter(
            &mut enc,
            "oee_stream_values_skipped",
            "Sample values of a kind the pipeline does not store (DataSet, Template, Bytes, File, PropertySet)",
            load(&s.values_skipped),
        )?;
        counter(
            &mut enc,
            "oee_stream_live_nodes_unlisted",
            "Node lifecycle changes left out of the live node list (/api/nodes) because it held sparkplug.max_nodes nodes, none offline",
            load(&s.live_nodes_unlisted),
        )?;

        let nodes: u64 = s.shards.iter().map(|sh| load(&sh.nodes)).sum();
        let metrics: u64 = s.shards.iter().map(|sh| load(&sh.metrics)).sum();
        gauge(
            &mut enc,
            "oee_stream_edge_nodes",
            "Edge nodes the host tracks",
            i64::try_from(nodes).unwrap_or(i64::MAX),
        )?;
        gauge(
            &mut enc,
            "oee_stream_alias_cache_entries",
            "Metrics known from births over all edge nodes and devices",
            i64::try_from(metrics).unwrap_or(i64::MAX),
        )?;

        let mut family = enc.encode_descriptor(
            "oee_stream_shard_queue_depth",
            "Messages waiting in each pipeline shard's queue",
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        for (i, sh) in s.shards.iter().enumerate() {
            let depth = i64::try_from(load(&sh.queue_depth)).unwrap_or(i64::MAX);
            ConstGauge::new(depth).encode(family.encode_family(&ShardLabel {
                shard: i.to_string(),
            })?)?;
        }
        encode_oee(&mut enc, &s.oee.snapshot())
    }
}

/// The OEE task's gauges: per machine the latest rolling window (else the current hour), in
/// percent, absent while NULL; active faults by machine and severity band.
fn encode_oee(
    enc: &mut DescriptorEncoder,
    snap: &crate::calculate::OeeSnapshot,
) -> std::fmt::Result {
    type Pick = fn(&crate::calculate::MachineGauges) -> Option<f64>;
    let kpis: [(&str, &str, Pick); 4] = [
        (
            "oee_calculator_oee_percent",
            "OEE of the latest rolling window (else the current hour), percent",
            |m| m.oee,
        ),
        (
            "oee_calculator_availability_percent",
            "Availability of the latest rolling window (else the current hour), percent",
            |m| m.availability,
        ),
        (
            "oee_calculator_performance_percent",
            "Performance of the latest rolling window (else the current hour), percent",
            |m| m.performance,
        ),
        (
            "oee_calculator_quality_percent",
            "Quality of the latest rolling window (else the current hour), percent",
            |m| m.quality,
        ),
    ];
    for (name, help, pick) in kpis {
        let mut family = enc.encode_descriptor(
            name,
            help,
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        for m in &snap.machines {
            if let Some(v) = pick(m) {
                ConstGauge::new(v * 100.0).encode(family.encode_family(&MachineLabel {
                    machine_id: m.machine_id.clone(),
                })?)?;
            }
        }
    }
    let mut family = enc.encode_descriptor(
        "fault_state_machine_active_faults",
        "Fault instances ACTIVE or ACKNOWLEDGED, by machine and severity band (low 1-200, medium_low 201-400, medium 401-600, medium_high 601-800, high 801-1000)",
        None,
        prometheus_client::metrics::MetricType::Gauge,
    )?;
    for (machine_id, severity, n) in &snap.faults_by_band {
        ConstGauge::new(i64::try_from(*n).unwrap_or(i64::MAX)).encode(family.encode_family(
            &FaultLabel {
                machine_id: machine_id.clone(),
                severity,
            },
        )?)?;
    }
    gauge(
        enc,
        "oee_calculator_active_windows",
        "Open (current hour) windows of machines and lines",
        i64::try_from(snap.active_windows).unwrap_or(i64::MAX),
    )?;
    counter(
        enc,
        "oee_calculator_window_results",
        "Window results (new and revised) written",
        snap.windows_out,
    )?;
    counter(
        enc,
        "oee_calculator_fault_transitions",
        "Fault transitions written",
        snap.fault_events_out,
    )?;
    counter(
        enc,
        "oee_calculator_inputs_too_late",
        "Inputs older than the revision horizon behind the watermark, dropped",
        snap.too_late,
    )?;
    let r = snap.retained;
    for (name, help, n) in [
        (
            "oee_calculator_retained_slices",
            "Time slices with their sums kept by the OEE engine",
            r.slices,
        ),
        (
            "oee_calculator_retained_windows",
            "Emitted windows kept by the OEE engine to detect revisions",
            r.windows,
        ),
        (
            "oee_calculator_retained_inputs",
            "Raw inputs kept by the OEE engine for late data (revision horizon)",
            r.inputs,
        ),
    ] {
        gauge(enc, name, help, i64::try_from(n).unwrap_or(i64::MAX))?;
    }
    Ok(())
}

#[derive(Debug)]
struct SinkCollector(Arc<SinkStats>);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TableLabel {
    table: &'static str,
}

impl Collector for SinkCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        let s = self.0.snapshot();
        let mut family = enc.encode_descriptor(
            "oee_stream_rows_written",
            "Rows committed to the database, by table",
            None,
            prometheus_client::metrics::MetricType::Counter,
        )?;
        for (table, v) in [
            ("telemetry", s.rows_telemetry),
            ("events", s.rows_events),
            ("oee_windows", s.rows_oee_windows),
            ("faults", s.rows_faults),
        ] {
            ConstCounter::new(v).encode(family.encode_family(&TableLabel { table })?)?;
        }
        let as_i64 = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        counter(
            &mut enc,
            "oee_stream_batches_written",
            "Batches committed to the database",
            s.batches_written,
        )?;
        counter(
            &mut enc,
            "oee_stream_batches_duplicate",
            "Batches found already committed (a retry after a lost acknowledgement, a replay)",
            s.batches_duplicate,
        )?;
        counter(
            &mut enc,
            "oee_stream_database_errors",
            "Failed write attempts (each retry counts)",
            s.database_errors,
        )?;
        counter(
            &mut enc,
            "oee_stream_batches_dead_lettered",
            "Batches the database refused for good, kept in spool/dead-letter/",
            s.batches_dead_lettered,
        )?;
        gauge(
            &mut enc,
            "oee_stream_sink_queue_depth",
            "Records waiting in the sink's in-memory queue",
            as_i64(s.queue_depth),
        )?;
        gauge(
            &mut enc,
            "oee_stream_spool_bytes",
            "Bytes in the disk spool not yet written to the database",
            as_i64(s.spool_bytes),
        )?;
        gauge(
            &mut enc,
            "oee_stream_spool_batches",
            "Batches in the disk spool not yet written to the database",
            as_i64(s.spool_batches),
        )?;
        counter(
            &mut enc,
            "oee_stream_spool_full",
            "Times the spool reached spool.max_bytes and the sink stopped taking records",
            s.spool_full,
        )?;
        gauge(
            &mut enc,
            "oee_stream_spool_full_now",
            "1 during a spool-full episode: from reaching spool.max_bytes until below 75 % again",
            as_i64(s.spool_full_now),
        )?;
        counter(
            &mut enc,
            "oee_stream_spool_errors",
            "Spool I/O failures (each retry counts)",
            s.spool_errors,
        )?;
        Ok(())
    }
}

/// The registry in the Prometheus text format.
pub fn render(registry: &Registry) -> Result<String, std::fmt::Error> {
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, registry)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calculate::{MachineGauges, OeeSnapshot};

    #[test]
    fn oee_gauges_are_percent_and_absent_while_null() {
        let stats = Arc::new(PipelineStats::new(1));
        *stats.oee.snapshot.lock().expect("lock") = OeeSnapshot {
            active_windows: 3,
            active_faults: 2,
            machines: vec![MachineGauges {
                machine_id: "M1".into(),
                availability: Some(0.5),
                performance: None,
                quality: Some(0.95),
                oee: Some(0.25),
            }],
            faults_by_band: vec![("M1".into(), "high", 2)],
            ..OeeSnapshot::default()
        };
        stats.timings.observe("calculate", 1e-5);
        let text = render(&registry(stats, Arc::new(SinkStats::default()))).expect("renders");
        for line in [
            "oee_calculator_oee_percent{machine_id=\"M1\"} 25.0",
            "oee_calculator_availability_percent{machine_id=\"M1\"} 50.0",
            "oee_calculator_quality_percent{machine_id=\"M1\"} 95.0",
            "fault_state_machine_active_faults{machine_id=\"M1\",severity=\"high\"} 2",
            "oee_calculator_active_windows 3",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
        assert!(
            !text.contains("oee_calculator_performance_percent{"),
            "{text}"
        );
        assert!(
            text.contains(
                "stream_processor_pipeline_duration_seconds_count{stage=\"calculate\"} 1"
            ),
            "{text}"
        );
    }
}
