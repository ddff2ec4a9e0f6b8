//! `[kpi]` and `[machine.kpi]`: the KPI settings, their tags resolved and checked.

use super::super::raw::{RawKpi, RawMachineKpi, S};
use super::{Duration, KpiConfig, MachineConfig, MachineKpi, TagInfo, TagRef, V};
use shopfloor_kpi::{StateWord, States, shift};

/// An `energy` reference waiting for every machine to be read: (machine index, its text).
pub(super) type PendingEnergy = (usize, S<String>);

/// `[kpi]`, when it is there or a machine has a `[machine.kpi]` (all defaults then).
pub(super) fn section(v: &mut V<'_>, raw: Option<&S<RawKpi>>, wanted: bool) -> Option<KpiConfig> {
    let Some(raw) = raw else {
        return wanted.then(|| KpiConfig {
            window: KpiConfig::DEFAULT_WINDOW,
            shifts: None,
            interval: KpiConfig::DEFAULT_INTERVAL,
            co2_kg_per_kwh: None,
        });
    };
    let k = raw.get_ref();
    let window = v.duration(&k.window, KpiConfig::DEFAULT_WINDOW);
    let interval = v.duration(&k.interval, KpiConfig::DEFAULT_INTERVAL);
    let zone = match &k.timezone {
        None => shift::zone(shift::DEFAULT_TIMEZONE).ok(),
        Some(z) => match shift::zone(z.get_ref()) {
            Ok(z) => Some(z),
            Err(e) => {
                v.err(z.span(), e.to_string());
                None
            }
        },
    };
    let mut starts = Vec::new();
    for s in k.shifts.iter().flat_map(|s| s.get_ref()) {
        match shift::parse_start(s.get_ref()) {
            Ok(t) if starts.contains(&t) => v.err(s.span(), "this shift start is given twice"),
            Ok(t) => starts.push(t),
            Err(e) => v.err(s.span(), e.to_string()),
        }
    }
    if let Some(s) = &k.shifts
        && s.get_ref().is_empty()
    {
        v.err(s.span(), "shifts is empty: leave it out for no shift KPIs");
    }
    let co2_kg_per_kwh = k.co2_kg_per_kwh.as_ref().and_then(|c| {
        let f = *c.get_ref();
        if f.is_finite() && f >= 0.0 {
            Some(f)
        } else {
            v.err(c.span(), "co2_kg_per_kwh must be a number of 0 or more");
            None
        }
    });
    Some(KpiConfig {
        window,
        shifts: zone.and_then(|z| shopfloor_kpi::Shifts::new(starts, z)),
        interval,
        co2_kg_per_kwh,
    })
}

/// A machine's `[machine.kpi]`, its own tags resolved; `energy` is resolved later, once every
/// machine is known.
pub(super) fn machine(
    v: &mut V<'_>,
    s: &S<RawMachineKpi>,
    tags: &[TagInfo],
) -> Option<(MachineKpi, Option<S<String>>)> {
    let k = s.get_ref();
    let tag = |v: &mut V<'_>, key: &str, name: &Option<S<String>>, required: bool| {
        let Some(name) = name else {
            if required {
                v.err(s.span(), format!("missing key `{key}`"));
            }
            return None;
        };
        let found = tags.iter().position(|t| &t.name == name.get_ref());
        if found.is_none() {
            v.err(
                name.span(),
                format!("{key} = {:?} is no tag of this machine", name.get_ref()),
            );
        }
        found
    };
    let state = tag(v, "state", &k.state, true);
    let good = tag(v, "good", &k.good, true);
    let reject = tag(v, "reject", &k.reject, false);
    let running = words(v, &k.running);
    if running.is_empty() {
        let at = k.running.as_ref().map_or(s.span(), S::span);
        v.err(at, "running must name at least one value of the state tag");
    }
    let planned_stop = words(v, &k.planned_stop);
    let ideal_cycle = match &k.ideal_cycle {
        None => {
            v.err(s.span(), "missing key `ideal_cycle`");
            None
        }
        Some(_) => Some(v.duration(&k.ideal_cycle, Duration::from_secs(1))),
    };
    let kpi = MachineKpi {
        state: state?,
        states: States {
            running,
            planned_stop,
        },
        good: good?,
        reject,
        ideal_cycle: ideal_cycle?,
        energy: None,
    };
    Some((kpi, k.energy.clone()))
}

/// State values as written: text, numbers or booleans.
fn words(v: &mut V<'_>, raw: &Option<S<Vec<S<toml::Value>>>>) -> Vec<StateWord> {
    let mut out = Vec::new();
    for w in raw.iter().flat_map(|r| r.get_ref()) {
        match w.get_ref() {
            toml::Value::String(t) => out.push(StateWord::Text(t.clone())),
            toml::Value::Integer(i) => out.push(StateWord::Number(*i as f64)),
            toml::Value::Float(f) => out.push(StateWord::Number(*f)),
            toml::Value::Boolean(b) => out.push(StateWord::Bool(*b)),
            _ => v.err(w.span(), "a state value is text, a number or a boolean"),
        }
    }
    out
}

/// Resolves each `energy = "machine.tag"` against every machine of the file.
pub(super) fn resolve_energy(
    v: &mut V<'_>,
    machines: &mut [MachineConfig],
    pending: Vec<PendingEnergy>,
) {
    for (index, raw) in pending {
        let text = raw.get_ref();
        let found = text.split_once('.').and_then(|(m, t)| {
            let mi = machines.iter().position(|x| x.id == m)?;
            let ti = machines.get(mi)?.tags.iter().position(|x| x.name == t)?;
            Some(TagRef {
                machine: mi,
                tag: ti,
            })
        });
        match found {
            None => v.err(
                raw.span(),
                format!(
                    "energy = {text:?} names no tag of a machine here; write it as \
                     \"machine.tag\", for example \"meter-1.energy_import\""
                ),
            ),
            Some(r) => {
                if let Some(kpi) = machines.get_mut(index).and_then(|m| m.kpi.as_mut()) {
                    kpi.energy = Some(r);
                }
            }
        }
    }
}
