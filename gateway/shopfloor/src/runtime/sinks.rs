//! The sinks of a gateway: built from the table of config sections, each its own task fed by a
//! port of the dispatcher, and started, restarted or stopped one by one when a reload adds,
//! changes or removes its section.

use super::{SHUTDOWN_BUDGET, StartError};
use crate::config::{Applied, Config};
use crate::dispatch::{Control, SinkPort};
use crate::record::Storing;
use crate::sink::intake::intake;
use crate::sink::{Build, Sink, SinkBoard, SinkContext, SinkStats, csv, influx, mqtt, sparkplug};
use crate::status::StatusBoard;
use crate::tasks::Tasks;
use shopfloor_core::SharedCatalog;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};

/// A sink of the table: its config section, its builder, and whether a file has the section.
#[derive(Debug)]
pub struct Entry {
    /// The section as the reload's summary names it.
    pub section: &'static str,
    build: Build,
    /// True when the file has the section.
    pub present: fn(&Config) -> bool,
}

/// Every sink the gateway can run, by the config section it is built from, in start order.
/// Adding a sink is its folder under `sink/`, its config section and one line here; a reload
/// then restarts it on its own when its section changes. (The live store is the HTTP
/// server's, started with it.)
pub const SINKS: [Entry; 4] = [
    Entry {
        section: "[mqtt]",
        build: mqtt::build,
        present: |c| c.mqtt.is_some(),
    },
    Entry {
        section: "[sparkplug]",
        build: sparkplug::build,
        present: |c| c.sparkplug.is_some(),
    },
    Entry {
        section: "[csv]",
        build: csv::build,
        present: |c| c.csv.is_some(),
    },
    Entry {
        section: "[influx]",
        build: influx::build,
        present: |c| c.influx.is_some(),
    },
];

/// A sink of the table as it runs.
#[derive(Debug)]
struct Running {
    name: &'static str,
    stats: Arc<SinkStats>,
    done: oneshot::Receiver<()>,
}

/// The sinks started so far: their tasks and their counters. Each joins (and leaves) the
/// dispatcher through its control channel, before it runs as while it runs: the dispatcher
/// takes every control message before its next batch.
#[derive(Debug)]
pub(super) struct Sinks {
    dispatcher: mpsc::UnboundedSender<Control>,
    /// Counters by sink name, for `/metrics` and `/health`.
    pub stats: SinkBoard,
    pub tasks: Tasks,
    /// What a recorder waits for before it acknowledges: the sinks of the table.
    pub storing: Storing,
    by_section: HashMap<&'static str, Running>,
}

impl Sinks {
    /// Builds every sink of the table whose section is in the config, each fed by the
    /// dispatcher behind `dispatcher`.
    pub fn from_table(
        ctx: &SinkContext<'_>,
        dispatcher: mpsc::UnboundedSender<Control>,
    ) -> Result<Sinks, StartError> {
        let mut sinks = Sinks {
            dispatcher,
            stats: SinkBoard::default(),
            tasks: Tasks::new(),
            storing: Storing::default(),
            by_section: HashMap::new(),
        };
        for Entry { section, build, .. } in SINKS {
            let stats = Arc::new(SinkStats::with_progress(&sinks.storing.progress));
            if let Some(sink) = build(ctx, Arc::clone(&stats))? {
                sinks.storing.sinks.push(Arc::clone(&stats));
                let name = sink.name();
                let done = sinks.start(sink, Arc::clone(&stats));
                sinks
                    .by_section
                    .insert(section, Running { name, stats, done });
            }
        }
        Ok(sinks)
    }

    /// Starts `sink` as its own task fed by the dispatcher, its counters in `/metrics`; word
    /// of its end comes through the receiver.
    pub fn start(&mut self, sink: Box<dyn Sink>, stats: Arc<SinkStats>) -> oneshot::Receiver<()> {
        let name = sink.name();
        let (port, done) = self.spawn(sink, Arc::clone(&stats));
        let _ = self.dispatcher.send(Control::Resume(port));
        if !self.stats.snapshot().iter().any(|(n, _)| *n == name) {
            self.stats.add(name, stats);
        }
        done
    }

    /// Stops sink `name` (one outside the table: the live store) for good: its input closes,
    /// it ends when it has handed on what it holds.
    pub fn stop(&mut self, name: &'static str) {
        let _ = self.dispatcher.send(Control::Close(name));
        self.stats.remove(name);
    }

    /// Whether any sink runs.
    pub fn is_empty(&self) -> bool {
        self.stats.snapshot().is_empty()
    }

    /// Runs `sink` as its own task; its port, and word of its end.
    fn spawn(
        &mut self,
        sink: Box<dyn Sink>,
        stats: Arc<SinkStats>,
    ) -> (SinkPort, oneshot::Receiver<()>) {
        let name = sink.name();
        let (feed, rx) = intake(sink.bound());
        let (ended, done) = oneshot::channel();
        let run = sink.run(rx, SHUTDOWN_BUDGET - Duration::from_secs(1));
        self.tasks.spawn(format!("the {name} sink"), async move {
            run.await;
            let _ = ended.send(());
        });
        (SinkPort { name, feed, stats }, done)
    }

    /// Brings the sink of `section` from `old` to `new`: started when the section is new,
    /// stopped when it is gone, restarted when it changed. A running sink first delivers or
    /// spools what it holds; the batches read meanwhile wait in the dispatcher for its
    /// successor. When the new section cannot start, the sink starts again on `old` and the
    /// error is returned.
    pub async fn apply(
        &mut self,
        section: &str,
        configs: (&Config, &Config),
        (catalog, applied, status): (&Arc<SharedCatalog>, &Arc<Applied>, &StatusBoard),
    ) -> Result<(), StartError> {
        let Some(Entry {
            section: key,
            build,
            present,
        }) = SINKS.into_iter().find(|e| e.section == section)
        else {
            return Ok(());
        };
        let (old, new) = configs;
        let stays = present(new);
        let running = self.by_section.remove(key);
        let stats = match &running {
            Some(r) => Arc::clone(&r.stats),
            None => Arc::new(SinkStats::with_progress(&self.storing.progress)),
        };
        if let Some(r) = running {
            if stays {
                let _ = self.dispatcher.send(Control::Hold(r.name));
            } else {
                self.stop(r.name);
            }
            if tokio::time::timeout(SHUTDOWN_BUDGET, r.done).await.is_err() {
                warn!(
                    sink = r.name,
                    "the sink did not finish in time; going on without it"
                );
            }
            if !stays {
                info!(sink = r.name, "sink stopped: its section was removed");
                return Ok(());
            }
        }
        let snapshot = catalog.load();
        let made = |config| {
            let ctx = SinkContext {
                config,
                catalog: &snapshot,
                shared: catalog,
                applied,
                status,
            };
            build(&ctx, Arc::clone(&stats))
        };
        let (sink, outcome) = match made(new) {
            Ok(s) => (s, Ok(())),
            Err(e) => (made(old).ok().flatten(), Err(e)),
        };
        let Some(sink) = sink else {
            return outcome;
        };
        let name = sink.name();
        let done = self.start(sink, Arc::clone(&stats));
        if outcome.is_ok() {
            info!(sink = name, "sink started on its new section");
        }
        self.by_section.insert(key, Running { name, stats, done });
        outcome
    }
}
