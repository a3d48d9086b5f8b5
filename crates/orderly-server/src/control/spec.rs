//! Community and charger settings: validation (messages name the field), conversion to store
//! records, and from store records to the controller's `CommunitySpec`.

use super::settings::{BaseLoad, ChargerElectricalSettings, CommunitySettings};
use jiff::Timestamp;
use orderly_control::community::HourlyTariff;
use orderly_control::{ChargerSpec, CommunitySpec, RateUnit};
use orderly_core::ChargePointId;
use orderly_store::{ChargerElectrical, CommunityRecord};

pub const DEFAULT_TIMEZONE: &str = "Asia/Shanghai";
pub const DEFAULT_EMERGENCY_PRICE: f64 = 1.5;
pub const DEFAULT_STAY_HOURS: f64 = 10.0;
pub const DEFAULT_ENERGY_KWH: f64 = 10.0;

/// The Beijing EV time-of-use tariff (data/tariffs/beijing-ev-tou-2016.json), embedded so the
/// binary needs no data files; averaged per clock hour (its bands start on whole hours).
const BEIJING_TOU: &str = include_str!("../../../../data/tariffs/beijing-ev-tou-2016.json");

/// 24 prices (CNY/kWh) of the default tariff, by local clock hour.
pub fn default_tariff() -> Vec<f64> {
    #[derive(serde::Deserialize)]
    struct File {
        bands: Vec<Band>,
    }
    #[derive(serde::Deserialize)]
    struct Band {
        price: f64,
        hours: Vec<[f64; 2]>,
    }
    let mut minutes = vec![0.0_f64; 24 * 60];
    if let Ok(file) = serde_json::from_str::<File>(BEIJING_TOU) {
        for band in file.bands {
            for [from, to] in band.hours {
                let (from, to) = ((from * 60.0) as usize, (to * 60.0) as usize);
                for m in minutes.iter_mut().take(to.min(24 * 60)).skip(from) {
                    *m = band.price;
                }
            }
        }
    }
    minutes
        .chunks(60)
        .map(|hour| {
            // Exact when the hour has one price (every band here starts on the hour).
            if hour.iter().all(|p| *p == hour[0]) {
                hour[0]
            } else {
                hour.iter().sum::<f64>() / 60.0
            }
        })
        .collect()
}

fn finite(field: &str, v: f64) -> Result<f64, String> {
    if v.is_finite() {
        Ok(v)
    } else {
        Err(format!("{field}: must be a finite number"))
    }
}

fn positive(field: &str, v: f64) -> Result<f64, String> {
    if finite(field, v)? > 0.0 {
        Ok(v)
    } else {
        Err(format!("{field}: must be greater than 0"))
    }
}

/// Greater than 0 and at most `max` (a bound on what a charger can be, so that derived figures
/// such as its power stay finite).
fn in_range(field: &str, v: f64, max: f64) -> Result<f64, String> {
    let v = positive(field, v)?;
    if v <= max {
        Ok(v)
    } else {
        Err(format!("{field}: must be at most {max}"))
    }
}

fn non_negative(field: &str, v: f64) -> Result<f64, String> {
    if finite(field, v)? >= 0.0 {
        Ok(v)
    } else {
        Err(format!("{field}: must be 0 or more"))
    }
}

fn hourly(field: &str, values: &[f64]) -> Result<Vec<f64>, String> {
    if values.len() != 24 {
        return Err(format!(
            "{field}: expected 24 values (one per local clock hour), got {}",
            values.len()
        ));
    }
    for (h, v) in values.iter().enumerate() {
        non_negative(&format!("{field}[{h}]"), *v)?;
    }
    Ok(values.to_vec())
}

/// A community id: 1–64 of `A-Z a-z 0-9 . _ -` (it appears in URLs).
pub fn check_community_id(id: &str) -> Result<(), String> {
    if id.is_empty()
        || id.len() > 64
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return Err(format!(
            "id: {id:?} must be 1 to 64 characters of A-Z, a-z, 0-9, '.', '_', '-'"
        ));
    }
    Ok(())
}

/// Validates `settings` and turns them into the record to store (times set by the store).
pub fn community_record(
    id: &str,
    settings: &CommunitySettings,
    now: Timestamp,
) -> Result<CommunityRecord, String> {
    check_community_id(id)?;
    let rating_kva = positive("rating_kva", settings.rating_kva)?;
    let power_factor = positive("power_factor", settings.power_factor)?;
    if power_factor > 1.0 {
        return Err("power_factor: must be at most 1".into());
    }
    let base_load_kw = match &settings.base_load_kw {
        BaseLoad::Flat(v) => vec![non_negative("base_load_kw", *v)?; 24],
        BaseLoad::Hourly(values) => hourly("base_load_kw", values)?,
    };
    let timezone = settings
        .timezone
        .clone()
        .unwrap_or_else(|| DEFAULT_TIMEZONE.to_owned());
    jiff::tz::TimeZone::get(&timezone)
        .map_err(|_| format!("timezone: {timezone:?} is not a known IANA time zone"))?;
    let tariff_cny_per_kwh = match &settings.tariff_cny_per_kwh {
        Some(values) => hourly("tariff_cny_per_kwh", values)?,
        None => default_tariff(),
    };
    let emergency_price_cny_per_kwh = non_negative(
        "emergency_price_cny_per_kwh",
        settings
            .emergency_price_cny_per_kwh
            .unwrap_or(DEFAULT_EMERGENCY_PRICE),
    )?;
    let default_stay_hours = positive(
        "default_stay_hours",
        settings.default_stay_hours.unwrap_or(DEFAULT_STAY_HOURS),
    )?;
    if default_stay_hours > 168.0 {
        return Err("default_stay_hours: must be at most 168 (a week)".into());
    }
    let default_energy_kwh = non_negative(
        "default_energy_kwh",
        settings.default_energy_kwh.unwrap_or(DEFAULT_ENERGY_KWH),
    )?;
    let community_meter = settings
        .community_meter
        .clone()
        .map(|m| ChargePointId::parse(m).map_err(|e| format!("community_meter: {e}")))
        .transpose()?;
    Ok(CommunityRecord {
        id: id.to_owned(),
        name: settings.name.clone(),
        rating_kva,
        power_factor,
        base_load_kw,
        timezone,
        tariff_cny_per_kwh,
        emergency_price_cny_per_kwh,
        max_emergencies: settings.max_emergencies,
        default_stay_hours,
        default_energy_kwh,
        community_meter,
        created_at: now,
        updated_at: now,
    })
}

/// Largest `voltage_v` a charger may be given.
pub const MAX_VOLTAGE_V: f64 = 1000.0;
/// Largest `max_current_a` a charger may be given.
pub const MAX_CURRENT_A: f64 = 1000.0;

/// Validates a charger's electrical settings and turns them into the record to store.
pub fn charger_record(
    charger: &ChargePointId,
    community: &str,
    s: &ChargerElectricalSettings,
) -> Result<ChargerElectrical, String> {
    if !matches!(s.phases, 1 | 3) {
        return Err(format!("phases: must be 1 or 3, not {}", s.phases));
    }
    // 1,000 V and 1,000 A bound every charger, AC (≤ 400 V, ≤ 63 A) or DC (≤ 1,000 V, ≤ 600 A).
    let voltage_v = in_range("voltage_v", s.voltage_v, MAX_VOLTAGE_V)?;
    let max_current_a = in_range("max_current_a", s.max_current_a, MAX_CURRENT_A)?;
    let min_current_a = non_negative("min_current_a", s.min_current_a)?;
    if min_current_a > max_current_a {
        return Err("min_current_a: must not exceed max_current_a".into());
    }
    Ok(ChargerElectrical {
        charger_id: charger.clone(),
        community_id: community.to_owned(),
        phases: s.phases,
        voltage_v,
        max_current_a,
        min_current_a,
        rate_unit: s.rate_unit.as_str().to_owned(),
    })
}

/// The controller's view of a stored community and its chargers.
pub fn community_spec(record: &CommunityRecord, chargers: &[ChargerElectrical]) -> CommunitySpec {
    CommunitySpec {
        id: record.id.clone(),
        rating_kva: record.rating_kva,
        power_factor: record.power_factor,
        base_load_kw: record.base_load_kw.clone(),
        timezone: record.timezone.clone(),
        tariff: HourlyTariff {
            cny_per_kwh: record.tariff_cny_per_kwh.clone(),
        },
        emergency_price_cny_per_kwh: record.emergency_price_cny_per_kwh,
        max_emergencies: record.max_emergencies,
        default_stay_hours: record.default_stay_hours,
        default_energy_kwh: record.default_energy_kwh,
        chargers: chargers
            .iter()
            .map(|c| ChargerSpec {
                id: c.charger_id.clone(),
                phases: c.phases,
                voltage_v: c.voltage_v,
                max_current_a: c.max_current_a,
                min_current_a: c.min_current_a,
                rate_unit: if c.rate_unit == "watts" {
                    RateUnit::Watts
                } else {
                    RateUnit::Amperes
                },
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_tariff_is_beijing_tou_by_hour() {
        let t = default_tariff();
        assert_eq!(t.len(), 24);
        assert_eq!(t[3], 0.3946);
        assert_eq!(t[8], 0.6950);
        assert_eq!(t[19], 1.0044);
        assert_eq!(t[23], 0.3946);
    }

    #[test]
    fn absurd_electrical_facts_are_refused_naming_the_field() {
        let id = ChargePointId::parse("CP1").unwrap();
        let ok = ChargerElectricalSettings {
            phases: 3,
            voltage_v: 230.0,
            max_current_a: 32.0,
            min_current_a: 6.0,
            rate_unit: Default::default(),
        };
        let power = |s: &ChargerElectricalSettings| {
            let r = charger_record(&id, "c", s).unwrap();
            r.voltage_v * r.max_current_a * f64::from(r.phases) / 1000.0
        };
        assert!((power(&ok) - 22.08).abs() < 1e-9);
        // Found by schemathesis: f64::MAX amperes gave an infinite power, served as null.
        for (s, field) in [
            (
                ChargerElectricalSettings {
                    max_current_a: f64::MAX,
                    ..ok.clone()
                },
                "max_current_a",
            ),
            (
                ChargerElectricalSettings {
                    max_current_a: 1000.5,
                    ..ok.clone()
                },
                "max_current_a",
            ),
            (
                ChargerElectricalSettings {
                    voltage_v: 1e300,
                    ..ok.clone()
                },
                "voltage_v",
            ),
        ] {
            let err = charger_record(&id, "c", &s).unwrap_err();
            assert!(err.starts_with(field), "{err}");
        }
        let edge = ChargerElectricalSettings {
            voltage_v: MAX_VOLTAGE_V,
            max_current_a: MAX_CURRENT_A,
            ..ok
        };
        assert!(power(&edge).is_finite());
    }
}
