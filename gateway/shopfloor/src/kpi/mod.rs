//! The KPI engine: a producer of samples beside the drivers. It watches the stream (each
//! configured machine's state, counters and status, and its meter's energy counter), keeps a
//! [`Ledger`] per machine, and every `[kpi] interval` publishes the window's and the shift's
//! KPIs as `kpi_*` samples of that machine, through every sink like any tag.
//!
//! - [`routes`]: which samples of the stream feed which ledger, and how;
//! - [`engine`]: the task: intake, ticks, publishing, the board for HTTP;
//! - [`persist`]: the ledgers saved under the spool directory, so a restart keeps a shift's
//!   KPIs.

pub mod engine;
pub mod persist;
pub mod routes;

pub use engine::{KpiBoard, KpiEngine, Reconfigure, Report};
pub use shopfloor_kpi::Ledger;
