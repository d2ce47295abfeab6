//! `oee-stream discover --broker URL [--for 60s] [--out FILE] [--rebirth]`: listens to the
//! Sparkplug namespace, prints what the births announce and writes a starting configuration
//! ([`oee_stream::discover`]). Read-only unless `--rebirth`. See docs/tools.md.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use oee_stream::discover::{Inventory, Observed};
use oee_stream::settings::{LogFormat, LogLevel};
use oee_stream::source::listen::{self, Heard, NAMESPACE};
use rumqttc::AsyncClient;
use tokio::sync::{mpsc, watch};

use crate::commands::connect::{BrokerArgs, ask_rebirth};
use crate::commands::demo::iso_time;
use crate::commands::run::{init_logging, shutdown_signal};
use crate::commands::simulate::{parse_duration, wall_ms};

#[derive(Debug, clap::Args)]
pub struct DiscoverArgs {
    #[command(flatten)]
    pub broker: BrokerArgs,

    /// How long to listen: 90s, 5m or plain seconds. Ctrl-C or SIGTERM ends it earlier (the
    /// report and the file are written all the same).
    #[arg(long = "for", value_name = "DURATION", value_parser = parse_duration, default_value = "60s")]
    pub duration: Duration,

    /// The configuration file to write.
    #[arg(long, value_name = "FILE", default_value = "discovered.yml")]
    pub out: PathBuf,

    /// Overwrite --out if it exists.
    #[arg(long)]
    pub force: bool,

    /// Ask edge nodes whose NBIRTH was not seen for a rebirth (an NCMD `Node Control/Rebirth`
    /// = true, once per node). Without it nothing is ever published.
    #[arg(long)]
    pub rebirth: bool,
}

pub fn run(args: &DiscoverArgs) -> anyhow::Result<()> {
    if args.out.exists() && !args.force {
        bail!(
            "{} exists; give another --out or --force to overwrite it",
            args.out.display()
        );
    }
    init_logging(LogLevel::Warn, LogFormat::Text);
    let (cfg, url) = args.broker.source("discover")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    eprintln!(
        "listening to {NAMESPACE} on {url} for {:?}{}",
        args.duration,
        if args.rebirth {
            " (asking unborn edge nodes for a rebirth)"
        } else {
            " (read-only)"
        }
    );
    let started = wall_ms();
    let limit = args.duration;
    let rebirth = args.rebirth;
    let inventory = runtime.block_on(async move {
        let (tx, mut rx) = mpsc::channel(1024);
        let (stop_tx, stop_rx) = watch::channel(false);
        let listener = tokio::spawn(listen::listen(cfg, tx, stop_rx));
        let stop = async move {
            tokio::select! {
                () = shutdown_signal() => {}
                () = tokio::time::sleep(limit) => {}
            }
        };
        tokio::pin!(stop);
        let mut inventory = Inventory::default();
        let mut client: Option<AsyncClient> = None;
        let mut stopping = false;
        loop {
            tokio::select! {
                () = &mut stop, if !stopping => {
                    stopping = true;
                    stop_tx.send_replace(true);
                }
                heard = rx.recv() => match heard {
                    None => break,
                    Some(Heard::Subscribed { at_ms, client: c }) => {
                        eprintln!("subscribed at {}", iso_time(at_ms));
                        client = Some(c);
                    }
                    Some(Heard::Lost { error, .. }) => {
                        eprintln!("warning: lost the broker connection ({error}); reconnecting");
                        client = None;
                    }
                    Some(Heard::Failed { error }) => {
                        eprintln!("warning: cannot connect to the broker: {error}; retrying");
                    }
                    Some(Heard::Message { topic, payload, .. }) => {
                        let Ok(topic) = std::str::from_utf8(&topic) else { continue };
                        match inventory.observe(topic, &payload) {
                            Observed::Birth { group, edge_node, device, metrics } => {
                                match device {
                                    Some(d) => eprintln!("DBIRTH {group}/{edge_node}/{d}: {metrics} metrics"),
                                    None => eprintln!("NBIRTH {group}/{edge_node}: {metrics} metrics"),
                                }
                            }
                            Observed::Unborn { group, edge_node } => {
                                if rebirth && let Some(c) = &client {
                                    ask_rebirth(c, &group, &edge_node);
                                } else {
                                    eprintln!("{group}/{edge_node} sends data but its NBIRTH was not seen (--rebirth asks for one)");
                                }
                            }
                            Observed::Nothing => {}
                        }
                    }
                },
            }
        }
        let _ = listener.await;
        inventory
    });
    let listing = inventory.listing();
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(listing.as_bytes());
    let _ = stdout.flush();
    let (nodes, devices, metrics) = inventory.counts();
    let header = vec![
        format!(
            "Written by `oee-stream discover` from {url}, listening {} to {}:",
            iso_time(started),
            iso_time(wall_ms())
        ),
        format!("{nodes} edge nodes, {devices} devices, {metrics} metrics in births."),
    ];
    let yaml = inventory.config_yaml(&url, &header);
    std::fs::write(&args.out, yaml).with_context(|| format!("writing {}", args.out.display()))?;
    eprintln!(
        "wrote {} ({} tag mapping rules); check it with `oee-stream check-config {}`",
        args.out.display(),
        inventory.rules().len(),
        args.out.display()
    );
    if nodes == 0 {
        eprintln!(
            "warning: no Sparkplug B edge node was heard; is the broker right, and do the nodes \
             publish under spBv1.0/?"
        );
    }
    Ok(())
}
