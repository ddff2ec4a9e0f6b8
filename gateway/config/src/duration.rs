//! Durations as written in the configuration: `"250ms"`, `"5s"`, `"1.5s"`, `"2m"`, `"1h"`.

use std::time::Duration;

/// Parses a duration; `Err` says what is wrong.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| format!("duration {text:?} has no unit: write e.g. \"250ms\" or \"5s\""))?;
    let (number, unit) = t.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("duration {text:?} does not start with a number"))?;
    let per_unit = match unit.trim() {
        "ms" => 1e-3,
        "s" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        other => {
            return Err(format!(
                "duration {text:?}: unknown unit {other:?} (use ms, s, m or h)"
            ));
        }
    };
    let secs = value * per_unit;
    if !(secs.is_finite() && secs > 0.0) {
        return Err(format!("duration {text:?} must be above zero"));
    }
    if secs > 86_400.0 * 365.0 {
        return Err(format!("duration {text:?} is longer than a year"));
    }
    let d = Duration::from_secs_f64(secs);
    if d.is_zero() {
        return Err(format!("duration {text:?} must be above zero"));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let ok = [
            ("250ms", 250),
            ("5s", 5000),
            ("1.5s", 1500),
            ("2m", 120_000),
            ("1h", 3_600_000),
            (" 10 ms", 10),
        ];
        for (t, ms) in ok {
            assert_eq!(parse_duration(t), Ok(Duration::from_millis(ms)), "{t}");
        }
        for bad in [
            "",
            "5",
            "0s",
            "-1s",
            "5 parsecs",
            "ms",
            "1e999s",
            "0.0000001ms",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
