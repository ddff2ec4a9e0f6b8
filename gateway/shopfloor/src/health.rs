//! What `/health` says: `ok`, or `degraded` with each problem named. Pure: the HTTP handler
//! hands it the machine states and the sinks' health.
//!
//! A gateway that is only waiting (for a broker, a store, a machine) is degraded, not dead: the
//! answer stays HTTP 200, so a liveness probe does not restart it for what a restart cannot fix.

use crate::sink::SinkStats;
use shopfloor_core::{Catalog, MachineState, MachineStatus};
use std::sync::Arc;
use std::time::Duration;

/// How long a sink may fail before it is a problem: longer than any sink's retry cap, so a
/// failed write and its retry are not yet one.
pub const DOWN_GRACE: Duration = Duration::from_secs(30);

/// A spool this full (in thousandths) is a problem: soon it drops the oldest.
pub const SPOOL_FULL_PERMILLE: u64 = 900;

/// The problems of a gateway at `now_ms`, in a stable order: machines, then sinks.
pub fn problems(
    catalog: &Catalog,
    statuses: &[MachineStatus],
    sinks: &[(&'static str, Arc<SinkStats>)],
    now_ms: i64,
) -> Vec<String> {
    let mut out = Vec::new();
    // Machines removed from the configuration are offline for good, and no problem.
    for (id, m) in catalog.machines() {
        let Some(st) = statuses.get(id.index()) else {
            continue;
        };
        if st.state != MachineState::Offline {
            continue;
        }
        let error = st.error.as_deref().unwrap_or("no answer");
        out.push(format!("machine {} offline: {error}", m.id));
    }
    let grace = i64::try_from(DOWN_GRACE.as_millis()).unwrap_or(i64::MAX);
    for (name, stats) in sinks {
        if let Some(t) = stats.health.trouble() {
            let for_s = (now_ms - t.since_ms).max(0) / 1000;
            if t.refused {
                out.push(format!(
                    "{name}: the destination refuses our credentials (for {for_s} s): {}",
                    t.reason
                ));
            } else if now_ms - t.since_ms > grace {
                out.push(format!(
                    "{name}: cannot deliver for {for_s} s: {}",
                    t.reason
                ));
            }
        }
        let permille = stats.health.spool_permille();
        if permille >= SPOOL_FULL_PERMILLE {
            out.push(format!("{name}: spool {}% full", permille / 10));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use shopfloor_core::MachineInfo;

    fn catalog() -> Catalog {
        let mut c = Catalog::new();
        for id in ["cnc-1", "imm-1"] {
            c.add(MachineInfo {
                id: id.into(),
                kind: "cnc".into(),
                protocol: "modbus-tcp".into(),
                tags: Vec::new(),
            })
            .unwrap();
        }
        c
    }

    fn status(state: MachineState, error: Option<&str>) -> MachineStatus {
        MachineStatus {
            state,
            since_ms: 0,
            error: error.map(str::to_owned),
        }
    }

    /// Machine states, a sink's trouble (since, refused), its spool fill, the problems wanted.
    type Case = (
        Vec<MachineStatus>,
        Option<(i64, bool)>,
        u64,
        Vec<&'static str>,
    );

    #[test]
    fn each_problem_is_named_and_a_short_failure_is_none() {
        let now = 10_000_000;
        let online = status(MachineState::Online, None);
        let cases: Vec<Case> = vec![
            (vec![online.clone(), online.clone()], None, 0, vec![]),
            (
                vec![status(MachineState::Connecting, None), online.clone()],
                None,
                0,
                vec![],
            ),
            (
                vec![
                    online.clone(),
                    status(MachineState::Offline, Some("timeout")),
                ],
                None,
                0,
                vec!["machine imm-1 offline: timeout"],
            ),
            // Down for 5 s: within the grace, no problem yet.
            (vec![online.clone()], Some((now - 5_000, false)), 0, vec![]),
            (
                vec![online.clone()],
                Some((now - 3_600_000, false)),
                0,
                vec!["mqtt: cannot deliver for 3600 s: connection refused"],
            ),
            // Refused credentials are a problem at once.
            (
                vec![online.clone()],
                Some((now - 1_000, true)),
                0,
                vec!["mqtt: the destination refuses our credentials (for 1 s): connection refused"],
            ),
            (vec![online], None, 950, vec!["mqtt: spool 95% full"]),
        ];
        for (statuses, trouble, spool, want) in cases {
            let stats = Arc::new(SinkStats::default());
            if let Some((since, refused)) = trouble {
                stats.health.failing("connection refused", refused);
                stats.health.set_since_for_test(since);
            }
            stats.health.spool_fill(spool, 1000);
            let got = problems(&catalog(), &statuses, &[("mqtt", stats)], now);
            assert_eq!(got, want);
        }
    }
}
