//! Faults a simulated machine shows on purpose, for demos and tests: periodic outages, slow
//! answers, exception codes and dropped connections.

use std::time::Duration;

/// What goes wrong, and when. The default is a healthy machine.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Faults {
    /// Go offline every this long (the first outage one period after start)...
    pub offline_every: Option<Duration>,
    /// ...for this long: new connections are closed at once and open ones get no answers, as
    /// when a machine is switched off behind a switch.
    pub offline_for: Duration,
    /// Delay every answer by this much.
    pub slow: Option<Duration>,
    /// Answer every request with this Modbus exception code.
    pub exception: Option<u8>,
    /// Close a connection after this many requests.
    pub drop_every: Option<u32>,
}

impl Faults {
    /// True when the schedule has the machine offline `since_start` after it started.
    pub fn offline_at(&self, since_start: Duration) -> bool {
        let Some(every) = self.offline_every.filter(|e| !e.is_zero()) else {
            return false;
        };
        let periods = since_start.as_nanos() / every.as_nanos();
        let into = since_start.as_nanos() % every.as_nanos();
        periods >= 1 && into < self.offline_for.as_nanos()
    }

    /// True when any fault is set.
    pub fn any(&self) -> bool {
        *self != Faults::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_outage_schedule() {
        let f = Faults {
            offline_every: Some(Duration::from_secs(10)),
            offline_for: Duration::from_secs(3),
            ..Faults::default()
        };
        for (t, offline) in [
            (0.0, false),
            (9.9, false),
            (10.0, true),
            (12.9, true),
            (13.0, false),
            (20.5, true),
            (25.0, false),
        ] {
            assert_eq!(
                f.offline_at(Duration::from_secs_f64(t)),
                offline,
                "at {t} s"
            );
        }
        assert!(!Faults::default().offline_at(Duration::from_secs(100)));
        assert!(!Faults::default().any());
        assert!(f.any());
    }
}
