//! The producers that are not machines: a recorder (the stream of other gateways) and the KPI
//! engine (figures computed from the machines' samples), each on a ring lane of its own.
//! They stop with the drivers, so that the ring can drain behind them.

use super::StartError;
use crate::config::Config;
use crate::dispatch::{Control, SinkPort};
use crate::kpi::{KpiBoard, KpiEngine, Reconfigure};
use crate::metrics::Metrics;
use crate::record::{Recorder, Storing};
use crate::sink::intake::intake;
use crate::tasks::Tasks;
use shopfloor_core::SharedCatalog;
use shopfloor_core::ring::{self, Joiner, Producer};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::info;

/// The lane of the recorder (no machine id can be this: ids are `[a-z0-9_-]+`).
const RECORDER_LANE: &str = "[record]";
/// The lane of the KPI engine.
const KPI_LANE: &str = "[kpi]";

/// What the producers take from the rest of the gateway.
pub(super) struct Wiring<'a> {
    /// Names, as a recorder learns them.
    pub shared: &'a Arc<SharedCatalog>,
    /// Where a recorder counts what it skips.
    pub metrics: &'a Arc<Metrics>,
    /// The sinks a recorder waits on before it acknowledges.
    pub storing: &'a Storing,
    /// Where the KPI engine's input joins the dispatcher.
    pub dispatcher: &'a mpsc::UnboundedSender<Control>,
    /// Where their ring joins the dispatcher's set.
    pub joiner: &'a Joiner,
}

/// The running producers that are not machines.
#[derive(Debug, Default)]
pub(super) struct Producers {
    pub tasks: Tasks,
    pub stop: CancellationToken,
    /// New configurations for the KPI engine, when it runs.
    pub kpi_changes: Option<mpsc::UnboundedSender<Reconfigure>>,
    /// The KPIs the HTTP server shows, when the engine runs.
    pub kpi_board: Option<Arc<KpiBoard>>,
}

impl Producers {
    /// Starts the recorder of `[record]` and the KPI engine of `[kpi]`, those the file has.
    pub fn start(config: &Config, wiring: &Wiring<'_>) -> Result<Producers, StartError> {
        let mut p = Producers::default();
        let mut lanes = lanes(config, wiring.joiner)?;
        if let (Some(record), Some(lane)) = (&config.record, lanes.remove(RECORDER_LANE)) {
            let recorder = Recorder::new(
                record,
                &config.gateway.name,
                Arc::clone(wiring.shared),
                lane,
                Arc::clone(wiring.metrics),
            )?
            .acknowledging_after(wiring.storing.clone());
            p.tasks
                .spawn("the recorder", recorder.run(p.stop.child_token()));
            info!(broker = %record.url, topics = ?record.topics, "recorder started");
        }
        let kpi = lanes
            .remove(KPI_LANE)
            .and_then(|lane| KpiEngine::new(config, lane));
        if let Some(engine) = kpi {
            p.kpi_board = Some(engine.board());
            let (feed, input) = intake(crate::sink::bound(&config.buffer, None));
            let _ = wiring.dispatcher.send(Control::Resume(SinkPort {
                name: "kpi",
                feed,
                stats: Arc::default(),
            }));
            let (tx, changes) = mpsc::unbounded_channel();
            p.tasks.spawn(
                "the KPI engine",
                engine.run(input, changes, p.stop.child_token()),
            );
            p.kpi_changes = Some(tx);
        }
        Ok(p)
    }
}

/// The lanes of the producers the file has, by owner, on one ring joined to the
/// dispatcher's set.
fn lanes(config: &Config, joiner: &Joiner) -> Result<HashMap<&'static str, Producer>, StartError> {
    let mut owners: Vec<(&'static str, usize)> = Vec::new();
    if config.record.is_some() {
        // A recorder's one lane takes the whole stream of every gateway it records.
        owners.push((RECORDER_LANE, config.buffer.capacity.max(1024)));
    }
    if config.kpi.is_some() {
        // A few intervals of every machine's KPI tags.
        let tags: usize = config.machines.iter().filter(|m| m.kpi.is_some()).count() * 16;
        owners.push((KPI_LANE, (4 * tags).max(1024)));
    }
    if owners.is_empty() {
        return Ok(HashMap::new());
    }
    let capacities: Vec<usize> = owners.iter().map(|(_, c)| *c).collect();
    let (producers, consumer) = ring::with_lanes(&capacities, config.buffer.when_full)?;
    joiner.join(consumer);
    Ok(owners.into_iter().map(|(o, _)| o).zip(producers).collect())
}
