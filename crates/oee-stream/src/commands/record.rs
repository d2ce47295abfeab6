//! `oee-stream record --broker URL --out FILE [--for DURATION]`: captures `spBv1.0/#` with
//! receipt times into a recording ([`oee_stream::recording`]); `oee-stream record --show FILE`
//! lists one. Read-only: it publishes nothing. See docs/tools.md.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use oee_stream::recording::{Entry, Reader, Writer};
use oee_stream::settings::{LogFormat, LogLevel};
use oee_stream::source::listen::{self, Heard, NAMESPACE};
use sparkplug::{MessageType, Payload, Topic};
use tokio::sync::{mpsc, watch};

use crate::commands::connect::{BrokerArgs, ask_rebirth};
use crate::commands::demo::iso_time;
use crate::commands::run::{init_logging, shutdown_signal};
use crate::commands::simulate::parse_duration;

#[derive(Debug, clap::Args)]
pub struct RecordArgs {
    #[command(flatten)]
    pub broker: BrokerArgs,

    /// The recording to create (it must not exist).
    #[arg(long, value_name = "FILE", required_unless_present = "show")]
    pub out: Option<PathBuf>,

    /// Stop after this long: 90s, 5m, 1h or plain seconds. Default: until Ctrl-C or SIGTERM.
    #[arg(long = "for", value_name = "DURATION", value_parser = parse_duration)]
    pub duration: Option<Duration>,

    /// Ask edge nodes whose NBIRTH was not recorded for a rebirth (an NCMD `Node
    /// Control/Rebirth` = true, once per node), so that the recording holds their births and
    /// can be replayed. Without it nothing is ever published.
    #[arg(long)]
    pub rebirth: bool,

    /// List the records of a recording instead of recording.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["out", "broker", "config", "duration", "rebirth"])]
    pub show: Option<PathBuf>,
}

/// How often what was written is forced to the disk.
const SYNC_EVERY: Duration = Duration::from_secs(1);
/// How often a status line is printed.
const STATUS_EVERY: Duration = Duration::from_secs(10);

pub fn run(args: &RecordArgs) -> anyhow::Result<()> {
    if let Some(file) = &args.show {
        return show(file);
    }
    let Some(out) = &args.out else {
        anyhow::bail!("--out FILE is required");
    };
    init_logging(LogLevel::Warn, LogFormat::Text);
    let (cfg, url) = args.broker.source("record")?;
    let mut writer = Writer::create(out)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    eprintln!(
        "recording {NAMESPACE} from {url} into {}{}",
        out.display(),
        args.duration
            .map(|d| format!(" for {d:?}"))
            .unwrap_or_else(|| " until Ctrl-C".to_string())
    );
    let limit = args.duration;
    let rebirth = args.rebirth;
    let count = runtime.block_on(async move {
        let (tx, mut rx) = mpsc::channel(1024);
        let (stop_tx, stop_rx) = watch::channel(false);
        let listener = tokio::spawn(listen::listen(cfg, tx, stop_rx));
        let stop = async move {
            match limit {
                Some(d) => tokio::select! {
                    () = shutdown_signal() => {}
                    () = tokio::time::sleep(d) => {}
                },
                None => shutdown_signal().await,
            }
        };
        tokio::pin!(stop);
        let mut sync = tokio::time::interval(SYNC_EVERY);
        let mut status = tokio::time::interval(STATUS_EVERY);
        status.tick().await;
        let mut messages: u64 = 0;
        let mut stopping = false;
        let mut born = Born::default();
        let mut client = None;
        loop {
            tokio::select! {
                () = &mut stop, if !stopping => {
                    stopping = true;
                    stop_tx.send_replace(true);
                }
                heard = rx.recv() => match heard {
                    Some(h) => {
                        match &h {
                            Heard::Subscribed { client: c, .. } => client = Some(c.clone()),
                            Heard::Lost { .. } => client = None,
                            Heard::Message { topic, .. } if rebirth => {
                                if let (Some(c), Some((group, node))) = (&client, born.unborn(topic)) {
                                    ask_rebirth(c, &group, &node);
                                }
                            }
                            _ => {}
                        }
                        if let Some(entry) = entry_of(h) {
                            if matches!(entry, Entry::Message { .. }) {
                                messages += 1;
                            }
                            writer.append(&entry)?;
                        }
                    }
                    // The listener has stopped and everything it heard is written.
                    None => break,
                },
                _ = sync.tick() => writer.sync()?,
                _ = status.tick() => eprintln!(
                    "{messages} messages, {} bytes in {}",
                    writer.bytes(),
                    out.display()
                ),
            }
        }
        let _ = listener.await;
        writer.sync()?;
        Ok::<_, anyhow::Error>((messages, writer.bytes()))
    })?;
    eprintln!(
        "recorded {} messages ({} bytes) in {}; list them with `oee-stream record --show {}`",
        count.0,
        count.1,
        out.display(),
        out.display()
    );
    Ok(())
}

/// Edge nodes by whether their NBIRTH was recorded (for `--rebirth`).
#[derive(Default)]
struct Born {
    born: std::collections::HashSet<(String, String)>,
    asked: std::collections::HashSet<(String, String)>,
}

impl Born {
    /// The (group, edge node) to ask for a rebirth: it sent something other than a birth,
    /// a death or a command, its NBIRTH was not recorded, and it was not asked yet.
    fn unborn(&mut self, topic: &[u8]) -> Option<(String, String)> {
        let topic = std::str::from_utf8(topic).ok()?;
        let Ok(Topic::Message {
            group,
            message_type,
            edge_node,
            ..
        }) = Topic::parse(topic)
        else {
            return None;
        };
        let key = (group.to_string(), edge_node.to_string());
        match message_type {
            MessageType::NBirth => {
                self.born.insert(key);
                None
            }
            MessageType::NDeath | MessageType::NCmd | MessageType::DCmd => None,
            _ if self.born.contains(&key) => None,
            _ => self.asked.insert(key.clone()).then_some(key),
        }
    }
}

/// What is written for what was heard; connection problems are also printed.
fn entry_of(h: Heard) -> Option<Entry> {
    match h {
        Heard::Subscribed { at_ms, .. } => {
            eprintln!("subscribed to {NAMESPACE} at {}", iso_time(at_ms));
            Some(Entry::Connected { at_ms })
        }
        Heard::Message {
            at_ms,
            topic,
            payload,
        } => Some(Entry::Message {
            at_ms,
            topic,
            payload,
        }),
        Heard::Lost { at_ms, error } => {
            eprintln!("warning: lost the broker connection ({error}); reconnecting");
            Some(Entry::ConnectionLost { at_ms })
        }
        Heard::Failed { error } => {
            eprintln!("warning: cannot connect to the broker: {error}; retrying");
            None
        }
    }
}

/// `--show FILE`: one line per record and a summary.
fn show(file: &Path) -> anyhow::Result<()> {
    let mut reader = Reader::open(file)?;
    let mut out = io::stdout().lock();
    let mut summary = Summary::default();
    let mut write = |line: String| -> anyhow::Result<bool> {
        match writeln!(out, "{line}") {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(false),
            Err(e) => Err(e).context("writing to standard output"),
        }
    };
    while let Some(entry) = reader.next_entry()? {
        summary.add(&entry);
        if !write(line_of(&entry))? {
            return Ok(());
        }
    }
    write(summary.line())?;
    if let Some(t) = reader.torn() {
        eprintln!(
            "warning: {}: the last {} bytes (from byte {}) are not a whole record (the recorder \
             stopped while writing it, or the file is damaged); they are ignored",
            file.display(),
            t.bytes,
            t.offset
        );
    }
    Ok(())
}

/// One listing line: time, what, topic, size and what the payload holds.
fn line_of(e: &Entry) -> String {
    let at = iso_ms(e.at_ms());
    match e {
        Entry::Connected { .. } => format!("{at}  CONNECTED"),
        Entry::ConnectionLost { .. } => format!("{at}  CONNECTION LOST"),
        Entry::Message { topic, payload, .. } => {
            let topic = String::from_utf8_lossy(topic);
            let (verb, what) = match Topic::parse(&topic) {
                Ok(Topic::State { .. }) => (
                    "STATE".to_string(),
                    String::from_utf8_lossy(payload).chars().take(80).collect(),
                ),
                Ok(Topic::Message { message_type, .. }) => (
                    message_type.verb().to_string(),
                    match Payload::decode(payload) {
                        Ok(p) => format!(
                            "seq {}, {} metric{}",
                            p.seq.map_or_else(|| "-".to_string(), |s| s.to_string()),
                            p.metrics.len(),
                            if p.metrics.len() == 1 { "" } else { "s" }
                        ),
                        Err(e) => format!("not a Sparkplug B payload: {e}"),
                    },
                ),
                Err(_) => ("OTHER".to_string(), String::new()),
            };
            format!("{at}  {verb:<6} {topic}  {} bytes  {what}", payload.len())
        }
    }
}

/// An ISO time with milliseconds.
fn iso_ms(ms: u64) -> String {
    let base = iso_time(ms);
    match base.strip_suffix('Z') {
        Some(b) => format!("{b}.{:03}Z", ms % 1000),
        None => base,
    }
}

#[derive(Default)]
struct Summary {
    records: u64,
    messages: u64,
    bytes: u64,
    losses: u64,
    first: Option<u64>,
    last: u64,
}

impl Summary {
    fn add(&mut self, e: &Entry) {
        self.records += 1;
        self.first.get_or_insert(e.at_ms());
        self.last = self.last.max(e.at_ms());
        match e {
            Entry::Message { payload, .. } => {
                self.messages += 1;
                self.bytes += payload.len() as u64;
            }
            Entry::ConnectionLost { .. } => self.losses += 1,
            Entry::Connected { .. } => {}
        }
    }

    fn line(&self) -> String {
        let span = match self.first {
            Some(f) => format!(
                ", {} to {} ({:.3} s)",
                iso_ms(f),
                iso_ms(self.last),
                (self.last - f) as f64 / 1000.0
            ),
            None => String::new(),
        };
        format!(
            "{} records: {} messages ({} payload bytes), {} connection losses{span}",
            self.records, self.messages, self.bytes, self.losses
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rebirth_is_asked_once_per_node_whose_birth_was_not_recorded() {
        let mut b = Born::default();
        let e1 = Some(("G".to_string(), "E1".to_string()));
        assert_eq!(b.unborn(b"spBv1.0/G/DDATA/E1/D"), e1);
        assert_eq!(b.unborn(b"spBv1.0/G/NDATA/E1"), None, "asked once");
        assert_eq!(b.unborn(b"spBv1.0/G/NBIRTH/E2"), None);
        assert_eq!(b.unborn(b"spBv1.0/G/DDATA/E2/D"), None, "born");
        assert_eq!(b.unborn(b"spBv1.0/G/NDEATH/E3"), None, "dead");
        assert_eq!(b.unborn(b"spBv1.0/G/NCMD/E3"), None);
        assert_eq!(b.unborn(b"spBv1.0/STATE/host"), None);
        assert_eq!(b.unborn(b"other/topic"), None);
    }
}
