//! The KPI engine's task: takes the stream, and every interval publishes each machine's KPIs.

use super::persist::{self, Saved};
use super::routes::Routes;
use crate::config::{Config, KpiConfig};
use crate::sink::intake::Intake;

use serde::Serialize;
use shopfloor_core::emit::derived::Derived;
use shopfloor_core::ring::Producer;
use shopfloor_core::time::now_ms;
use shopfloor_core::{MachineId, Sample, Value};
use shopfloor_kpi::{Breakdown, Figure, Ledger, Rates, Shifts};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// A machine's KPIs as `GET /api/machines/{id}/kpi` gives them.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// When they were computed (UTC ms).
    pub computed_ms: i64,
    /// Over the rolling window.
    #[serde(flatten)]
    pub window: Breakdown,
    /// Over the current shift, when shifts are configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shift: Option<ShiftReport>,
}

/// The current shift's KPIs.
#[derive(Debug, Clone, Serialize)]
pub struct ShiftReport {
    /// When the shift began (UTC ms).
    pub start_ms: i64,
    /// Its KPIs so far.
    #[serde(flatten)]
    pub breakdown: Breakdown,
}

/// The latest report of every machine with KPIs, by machine id, for HTTP.
#[derive(Debug, Default)]
pub struct KpiBoard {
    reports: RwLock<HashMap<String, Option<Report>>>,
}

impl KpiBoard {
    /// `Some(report)` for a machine with KPIs (`Some(None)` before the first interval),
    /// `None` for a machine without.
    pub fn get(&self, machine: &str) -> Option<Option<Report>> {
        self.reports.read().ok()?.get(machine).cloned()
    }

    fn set(&self, machine: &str, report: Option<Report>) {
        if let Ok(mut r) = self.reports.write() {
            r.insert(machine.to_owned(), report);
        }
    }

    fn remove(&self, machine: &str) {
        if let Ok(mut r) = self.reports.write() {
            r.remove(machine);
        }
    }
}

/// One machine whose KPIs are computed.
#[derive(Debug)]
struct Watched {
    id: String,
    rates: Rates,
    metered: bool,
    derived: Derived,
    tags: Vec<(Figure, bool)>,
}

/// The machines of `config` with KPIs, `ids[i]` the catalog id of its machine `i`.
fn watch(config: &Config, settings: &KpiConfig, ids: &[MachineId]) -> Vec<Watched> {
    let mut watched = Vec::new();
    for (m, &machine) in config.machines.iter().zip(ids) {
        let Some(kpi) = &m.kpi else { continue };
        let tags = settings.tags(kpi);
        watched.push(Watched {
            id: m.id.clone(),
            rates: Rates {
                ideal_cycle_s: kpi.ideal_cycle.as_secs_f64(),
                co2_kg_per_kwh: settings.co2_kg_per_kwh,
            },
            metered: kpi.energy.is_some(),
            derived: Derived::new(machine, m.tags.len(), tags.len()),
            tags,
        });
    }
    watched
}

/// A configuration a reload applied, with the catalog id of each of its machines.
pub type Reconfigure = (Arc<Config>, Vec<MachineId>);

/// The engine, built before the gateway starts.
#[derive(Debug)]
pub struct KpiEngine {
    settings: KpiConfig,
    watched: Vec<Watched>,
    ledgers: Vec<Ledger>,
    routes: Routes,
    producer: Producer,
    board: Arc<KpiBoard>,
    state_file: Option<PathBuf>,
    out: Vec<Sample>,
}

impl KpiEngine {
    /// The engine of `config`'s `[kpi]`, publishing on `producer`; `None` without KPIs.
    pub fn new(config: &Config, producer: Producer) -> Option<KpiEngine> {
        let settings = config.kpi.clone()?;
        let board = Arc::new(KpiBoard::default());
        let ids: Vec<MachineId> = (0..config.machines.len())
            .map(|i| u16::try_from(i).map(MachineId))
            .collect::<Result<_, _>>()
            .ok()?;
        let watched = watch(config, &settings, &ids);
        for w in &watched {
            board.set(&w.id, None);
        }
        let state_file = config.buffer.spool_dir.as_ref().map(|d| persist::path(d));
        let mut ledgers = vec![Ledger::new(); watched.len()];
        if let Some(path) = &state_file {
            resume(path, &watched, &mut ledgers);
        }
        Some(KpiEngine {
            routes: Routes::new(config, &ids),
            settings,
            watched,
            ledgers,
            producer,
            board,
            state_file,
            out: Vec::new(),
        })
    }

    /// Takes a configuration a reload applied, `ids[i]` the catalog id of its machine `i`:
    /// machines with KPIs added start with an empty ledger, those removed leave the board,
    /// and the others keep their ledger and their KPI tags' `seq`.
    pub fn reconfigure(&mut self, config: &Config, ids: &[MachineId]) {
        let mut watched = watch(config, &self.settings, ids);
        let mut ledgers = Vec::with_capacity(watched.len());
        for w in &mut watched {
            match self.watched.iter().position(|o| o.id == w.id) {
                Some(i) => {
                    w.derived = self.watched[i].derived.moved(
                        w.derived.machine(),
                        w.derived.first(),
                        w.tags.len(),
                    );
                    ledgers.push(std::mem::take(&mut self.ledgers[i]));
                }
                None => {
                    self.board.set(&w.id, None);
                    ledgers.push(Ledger::new());
                }
            }
        }
        for gone in self
            .watched
            .iter()
            .filter(|o| !watched.iter().any(|w| w.id == o.id))
        {
            self.board.remove(&gone.id);
        }
        self.routes = Routes::new(config, ids);
        self.watched = watched;
        self.ledgers = ledgers;
    }

    /// What HTTP reads.
    pub fn board(&self) -> Arc<KpiBoard> {
        Arc::clone(&self.board)
    }

    /// Runs until `stop`: takes `input` (the dispatcher's batches), publishes every interval,
    /// and saves its ledgers (with a spool directory) every interval and when it stops.
    pub async fn run(
        mut self,
        mut input: Intake,
        mut changes: mpsc::UnboundedReceiver<Reconfigure>,
        stop: CancellationToken,
    ) {
        let mut tick = tokio::time::interval(self.settings.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The first tick is at once: nothing read yet, so wait one interval for it.
        tick.tick().await;
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                Some((config, ids)) = changes.recv() => self.reconfigure(&config, &ids),
                batch = input.recv() => match batch {
                    Some(b) => self.feed(&b),
                    None => break,
                },
                _ = tick.tick() => {
                    self.publish(now_ms());
                    self.save().await;
                }
            }
        }
        self.save().await;
    }

    fn feed(&mut self, batch: &[Sample]) {
        for run in batch.chunk_by(|a, b| a.machine == b.machine) {
            if !self.routes.watches(run[0].machine) {
                continue;
            }
            for s in run {
                self.routes.feed(&mut self.ledgers, s);
            }
        }
    }

    /// Computes every machine's KPIs at `now`, publishes them and updates the board.
    fn publish(&mut self, now: i64) {
        let window_start = now - duration_ms(self.settings.window);
        let shift_start = self
            .settings
            .shifts
            .as_ref()
            .and_then(|s: &Shifts| s.current_start(now));
        for (w, ledger) in self.watched.iter_mut().zip(&mut self.ledgers) {
            let window = Breakdown::of(&ledger.totals(window_start, now), w.rates, w.metered);
            let shift = shift_start.map(|start| ShiftReport {
                start_ms: start,
                breakdown: Breakdown::of(&ledger.totals(start, now), w.rates, w.metered),
            });
            ledger.forget_before(shift_start.map_or(window_start, |s| s.min(window_start)));
            let ts = w.derived.stamp(now);
            for (i, &(figure, of_shift)) in w.tags.iter().enumerate() {
                let b = match (&shift, of_shift) {
                    (Some(s), true) => &s.breakdown,
                    (None, true) => continue,
                    (_, false) => &window,
                };
                let Some(x) = figure.of(b) else { continue };
                let value = if figure.is_count() {
                    Value::U64(x.round().max(0.0) as u64)
                } else {
                    Value::F64(x)
                };
                w.derived.value(&mut self.out, i, ts, value);
            }
            self.board.set(
                &w.id,
                Some(Report {
                    computed_ms: now,
                    window,
                    shift,
                }),
            );
        }
        let dropped = self.producer.push_batch(&mut self.out);
        if dropped > 0 {
            warn!(dropped, "KPI samples dropped: the ring is full");
        }
    }

    async fn save(&self) {
        let Some(path) = self.state_file.clone() else {
            return;
        };
        let saved = Saved::of(
            now_ms(),
            self.watched
                .iter()
                .map(|w| w.id.as_str())
                .zip(&self.ledgers),
        );
        let done = tokio::task::spawn_blocking(move || persist::save(&path, &saved))
            .await
            .map_err(std::io::Error::other)
            .and_then(|saved| saved);
        if let Err(e) = done {
            warn!(error = %e, "cannot save the KPI state");
        }
    }
}

fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 2)
}

/// Takes up the ledgers saved by the last run, if any: the time since the save is not known.
fn resume(path: &std::path::Path, watched: &[Watched], ledgers: &mut [Ledger]) {
    let saved = match persist::load(path) {
        Ok(Some(s)) => s,
        Ok(None) => return,
        Err(e) => {
            warn!(path = %path.display(), error = %e, "cannot read the saved KPI state; KPIs start afresh");
            return;
        }
    };
    let mut resumed = 0;
    for (w, ledger) in watched.iter().zip(ledgers.iter_mut()) {
        if let Some(l) = saved.ledger(&w.id) {
            *ledger = l;
            ledger.activity(saved.saved_ms, shopfloor_kpi::Activity::Unknown);
            resumed += 1;
        }
    }
    info!(
        machines = resumed,
        saved_ms = saved.saved_ms,
        "KPI state taken up from the last run"
    );
}
