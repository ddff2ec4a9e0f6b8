//! The KPI tags a machine gets: their names, units, and which figure of a breakdown each holds.

use crate::breakdown::Breakdown;

/// Every tag name a KPI takes starts with this; no configured tag may.
pub const PREFIX: &str = "kpi_";

/// One figure of a breakdown, published as a tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Figure {
    /// OEE.
    Oee,
    /// Availability.
    Availability,
    /// Performance.
    Performance,
    /// Quality.
    Quality,
    /// Good parts made.
    Good,
    /// Rejected parts made.
    Reject,
    /// Energy per good part.
    EnergyPerPart,
    /// CO2 per good part.
    Co2PerPart,
}

/// Which figures a machine publishes: energy ones only with a meter, CO2 only with a factor.
pub fn figures(metered: bool, co2: bool) -> Vec<Figure> {
    use Figure::*;
    let mut f = vec![Oee, Availability, Performance, Quality, Good, Reject];
    if metered {
        f.push(EnergyPerPart);
        if co2 {
            f.push(Co2PerPart);
        }
    }
    f
}

impl Figure {
    /// The tag's name: `kpi_oee` for the window, `kpi_shift_oee` for the shift.
    pub fn tag(self, shift: bool) -> String {
        let base = match self {
            Figure::Oee => "oee",
            Figure::Availability => "availability",
            Figure::Performance => "performance",
            Figure::Quality => "quality",
            Figure::Good => "good",
            Figure::Reject => "reject",
            Figure::EnergyPerPart => "energy_per_part_kwh",
            Figure::Co2PerPart => "co2_per_part_kg",
        };
        if shift {
            format!("{PREFIX}shift_{base}")
        } else {
            format!("{PREFIX}{base}")
        }
    }

    /// The tag's unit, if it has one (the ratios are fractions, not percent).
    pub fn unit(self) -> Option<&'static str> {
        match self {
            Figure::Good | Figure::Reject => Some("parts"),
            Figure::EnergyPerPart => Some("kWh"),
            Figure::Co2PerPart => Some("kg"),
            _ => None,
        }
    }

    /// The figure in `b`; `None` where a ratio is left out.
    pub fn of(self, b: &Breakdown) -> Option<f64> {
        match self {
            Figure::Oee => b.oee,
            Figure::Availability => b.availability,
            Figure::Performance => b.performance,
            Figure::Quality => b.quality,
            Figure::Good => Some(b.good),
            Figure::Reject => Some(b.reject),
            Figure::EnergyPerPart => b.energy_per_part_kwh,
            Figure::Co2PerPart => b.co2_per_part_kg,
        }
    }

    /// Whether it counts parts (published as a whole number).
    pub fn is_count(self) -> bool {
        matches!(self, Figure::Good | Figure::Reject)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_names_are_the_contracts() {
        let names: Vec<String> = figures(true, true).iter().map(|f| f.tag(false)).collect();
        assert_eq!(
            names,
            [
                "kpi_oee",
                "kpi_availability",
                "kpi_performance",
                "kpi_quality",
                "kpi_good",
                "kpi_reject",
                "kpi_energy_per_part_kwh",
                "kpi_co2_per_part_kg"
            ]
        );
        assert_eq!(Figure::Oee.tag(true), "kpi_shift_oee");
        assert_eq!(Figure::Good.tag(true), "kpi_shift_good");
        assert_eq!(figures(false, true).len(), 6);
        assert_eq!(figures(true, false).len(), 7);
        assert!(names.iter().all(|n| n.starts_with(PREFIX)));
    }
}
