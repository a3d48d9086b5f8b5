//! Meter values → the controller's units, at the edge.
//!
//! Of each MeterValue (one timestamp) the controller needs: active import power (W), the active
//! import energy register (Wh) and the state of charge (%). Units are converted (kW → W,
//! kWh → Wh); a non-phase value is preferred, else the phases are summed (L1, L2, L3 or L1-N…,
//! never the phase-to-phase values L1-L2…, which would count a load twice); signed data, values
//! that are not numbers, and readings at the EV side or of the cable/body (not what the charger
//! delivers from the grid) are ignored.

use orderly_store::{MeterValue, SampledValue};

/// One converted reading.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Reading {
    pub at: jiff::Timestamp,
    pub power_w: Option<f64>,
    pub energy_wh: Option<f64>,
    pub soc_percent: Option<f64>,
}

fn number(sv: &SampledValue) -> Option<f64> {
    if sv.format.as_deref().is_some_and(|f| f != "Raw") {
        return None;
    }
    sv.value
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
}

/// Scale to the base unit (W or Wh) from the sample's unit; None for a unit of another kind.
fn scaled(sv: &SampledValue, base: &str, value: f64) -> Option<f64> {
    let unit = sv.unit.as_deref().unwrap_or(base);
    if unit == base {
        Some(value)
    } else if unit.strip_prefix('k') == Some(base) {
        Some(value * 1000.0)
    } else {
        None
    }
}

fn grid_side(sv: &SampledValue) -> bool {
    matches!(
        sv.location.as_deref(),
        None | Some("Outlet") | Some("Inlet")
    )
}

/// Non-phase value if present, else the sum of the per-phase (to neutral) values.
fn total(samples: &[(Option<&str>, f64)]) -> Option<f64> {
    if let Some((_, v)) = samples.iter().find(|(phase, _)| phase.is_none()) {
        return Some(*v);
    }
    let phases: Vec<f64> = samples
        .iter()
        .filter(|(phase, _)| matches!(phase, Some("L1" | "L2" | "L3" | "L1-N" | "L2-N" | "L3-N")))
        .map(|(_, v)| *v)
        .collect();
    (!phases.is_empty()).then(|| phases.iter().sum())
}

/// The readings of a MeterValues (or StopTransaction transactionData) that say something.
pub fn readings(values: &[MeterValue]) -> Vec<Reading> {
    values
        .iter()
        .filter_map(|mv| {
            let mut power = Vec::new();
            let mut energy = Vec::new();
            let mut soc = None;
            for sv in &mv.sampled_values {
                let Some(value) = number(sv) else { continue };
                let measurand = sv
                    .measurand
                    .as_deref()
                    .unwrap_or("Energy.Active.Import.Register");
                match measurand {
                    "Power.Active.Import" if grid_side(sv) => {
                        if let Some(w) = scaled(sv, "W", value) {
                            power.push((sv.phase.as_deref(), w));
                        }
                    }
                    "Energy.Active.Import.Register" if grid_side(sv) => {
                        if let Some(wh) = scaled(sv, "Wh", value) {
                            energy.push((sv.phase.as_deref(), wh));
                        }
                    }
                    "SoC" => soc = Some(value),
                    _ => {}
                }
            }
            let reading = Reading {
                at: mv.timestamp,
                power_w: total(&power),
                energy_wh: total(&energy),
                soc_percent: soc,
            };
            (reading.power_w.is_some() || reading.energy_wh.is_some() || soc.is_some())
                .then_some(reading)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sv(
        measurand: Option<&str>,
        phase: Option<&str>,
        unit: Option<&str>,
        v: &str,
    ) -> SampledValue {
        SampledValue {
            value: v.into(),
            measurand: measurand.map(Into::into),
            phase: phase.map(Into::into),
            unit: unit.map(Into::into),
            ..SampledValue::default()
        }
    }

    #[test]
    fn units_and_phases_are_converted() {
        let at: jiff::Timestamp = "2026-11-26T12:00:00Z".parse().unwrap();
        let mv = MeterValue {
            timestamp: at,
            sampled_values: vec![
                sv(Some("Power.Active.Import"), Some("L1"), Some("kW"), "2.2"),
                sv(Some("Power.Active.Import"), Some("L2"), Some("W"), "2200"),
                sv(
                    Some("Power.Active.Import"),
                    Some("L1-L2"),
                    Some("W"),
                    "9999",
                ),
                sv(None, None, Some("kWh"), "12.5"),
                sv(Some("SoC"), None, Some("Percent"), "55"),
                sv(Some("Current.Import"), None, Some("A"), "10"),
            ],
        };
        let r = readings(&[mv]);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].power_w, Some(4400.0));
        assert_eq!(r[0].energy_wh, Some(12_500.0));
        assert_eq!(r[0].soc_percent, Some(55.0));

        // A total beats phases; other measurands alone say nothing.
        let mv = MeterValue {
            timestamp: at,
            sampled_values: vec![
                sv(Some("Power.Active.Import"), Some("L1"), None, "1000"),
                sv(Some("Power.Active.Import"), None, None, "3000"),
            ],
        };
        assert_eq!(readings(&[mv])[0].power_w, Some(3000.0));
        let mv = MeterValue {
            timestamp: at,
            sampled_values: vec![sv(Some("Voltage"), None, Some("V"), "230")],
        };
        assert!(readings(&[mv]).is_empty());
    }
}
