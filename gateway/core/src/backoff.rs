//! Exponential backoff with full jitter, for reconnect loops that must go on forever without
//! hammering a machine that is down, nor reconnecting in lockstep with other gateways.

use rand::Rng;
use std::time::Duration;

/// Delays that double from `initial` up to `max`, each drawn uniformly from half to all of the
/// current step.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    current: Duration,
}

impl Backoff {
    /// A backoff starting at `initial` and capped at `max`.
    pub fn new(initial: Duration, max: Duration) -> Backoff {
        Backoff {
            initial,
            max,
            current: initial,
        }
    }

    /// The next delay to wait.
    pub fn next_delay(&mut self) -> Duration {
        let step = self.current;
        self.current = (self.current * 2).min(self.max);
        let ms = step.as_millis() as u64;
        let low = ms / 2;
        Duration::from_millis(rand::rng().random_range(low..=ms.max(low)))
    }

    /// Back to `initial`, after a success.
    pub fn reset(&mut self) {
        self.current = self.initial;
    }
}

impl Default for Backoff {
    /// 250 ms doubling to about 30 s.
    fn default() -> Backoff {
        Backoff::new(Duration::from_millis(250), Duration::from_secs(30))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_with_jitter_up_to_the_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(800));
        let steps: Vec<u128> = (0..6).map(|_| b.next_delay().as_millis()).collect();
        let caps = [100, 200, 400, 800, 800, 800];
        for (d, cap) in steps.iter().zip(caps) {
            assert!(
                *d >= cap / 2 && *d <= cap,
                "{d} not in [{}, {cap}]",
                cap / 2
            );
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }
}
