//! Production KPIs at the edge, as ISO 22400-2 defines them: availability, performance,
//! quality, OEE, and energy (and CO2) per good part, from a machine's state and counters.
//! Pure: no clock, no I/O; the gateway's KPI engine feeds it samples and asks it for spans.
//!
//! Modules:
//! - [`ledger`]: what a machine did over time (activity changes, counted increments) and the
//!   [`Totals`] of any span of it;
//! - [`counter`]: a counter's rises between readings, across resets;
//! - [`breakdown`]: the KPIs of a span from its totals, a zero denominator left out;
//! - [`shift`]: when the current shift began, in local time;
//! - [`states`]: what a machine's `state` values mean (running, planned stop, stopped);
//! - [`tags`]: the KPI tags a machine gets and the figure each holds.

pub mod breakdown;
pub mod counter;
pub mod ledger;
pub mod shift;
pub mod states;
pub mod tags;

pub use breakdown::{Breakdown, Rates};
pub use ledger::{Activity, Counted, Ledger, Totals};
pub use shift::{ShiftError, Shifts};
pub use states::{StateWord, States};
pub use tags::Figure;
