//! Time-of-use tariffs (`data/tariffs/*.json`): price bands over the clock hours of a day,
//! turned into a price per slot.

use std::path::Path;

use jiff::civil::DateTime;
use serde::Deserialize;

use crate::error::DataError;

const MINUTES_PER_DAY: usize = 24 * 60;

#[derive(Debug, Deserialize)]
struct TariffFile {
    name: String,
    currency: String,
    bands: Vec<BandFile>,
}

#[derive(Debug, Deserialize)]
struct BandFile {
    band: String,
    price: f64,
    /// `[start, end)` clock hours; fractional hours are allowed when they are whole minutes.
    hours: Vec<[f64; 2]>,
}

/// A daily time-of-use tariff: one price for every minute of the day.
#[derive(Debug, Clone, PartialEq)]
pub struct Tariff {
    pub name: String,
    pub currency: String,
    /// Price per kWh in each minute of the day (index 0 is 00:00–00:01).
    per_minute: Vec<f64>,
}

impl Tariff {
    /// Reads a tariff file; its bands must cover each hour of the day exactly once.
    pub fn read(file: &Path) -> Result<Self, DataError> {
        let text = std::fs::read_to_string(file).map_err(|source| DataError::Io {
            file: file.to_path_buf(),
            source,
        })?;
        let parsed: TariffFile = serde_json::from_str(&text).map_err(|e| DataError::Tariff {
            file: file.to_path_buf(),
            reason: e.to_string(),
        })?;
        Self::from_bands(parsed).map_err(|reason| DataError::Tariff {
            file: file.to_path_buf(),
            reason,
        })
    }

    fn from_bands(parsed: TariffFile) -> Result<Self, String> {
        let mut per_minute: Vec<Option<(f64, &str)>> = vec![None; MINUTES_PER_DAY];
        for band in &parsed.bands {
            if !band.price.is_finite() {
                return Err(format!("band {:?}: the price must be a number", band.band));
            }
            for &[start, end] in &band.hours {
                let to_minute = |h: f64| {
                    let m = h * 60.0;
                    if (0.0..=MINUTES_PER_DAY as f64).contains(&m) && m.fract() == 0.0 {
                        Ok(m as usize)
                    } else {
                        Err(format!(
                            "band {:?}: hour {h} is not a whole minute in 0..=24",
                            band.band
                        ))
                    }
                };
                let (from, to) = (to_minute(start)?, to_minute(end)?);
                if from >= to {
                    return Err(format!(
                        "band {:?}: hours [{start}, {end}) are empty or reversed",
                        band.band
                    ));
                }
                for (minute, slot) in per_minute.iter_mut().enumerate().take(to).skip(from) {
                    if let Some((_, other)) = slot {
                        return Err(format!(
                            "bands {other:?} and {:?} overlap at {:02}:{:02}",
                            band.band,
                            minute / 60,
                            minute % 60
                        ));
                    }
                    *slot = Some((band.price, &band.band));
                }
            }
        }
        let per_minute = per_minute
            .iter()
            .enumerate()
            .map(|(minute, slot)| {
                slot.map(|(price, _)| price)
                    .ok_or_else(|| format!("no band covers {:02}:{:02}", minute / 60, minute % 60))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            name: parsed.name,
            currency: parsed.currency,
            per_minute,
        })
    }

    /// Price in force at a clock time (the minute containing it).
    pub fn price_at(&self, time: DateTime) -> f64 {
        self.per_minute[minute_of_day(time)]
    }

    /// Average price over each of `count` slots of `slot_minutes` starting at `start`. The
    /// average is over the slot's minutes, so a slot that straddles a band boundary is priced
    /// exactly for energy drawn at a constant power within it. The bands apply to naive clock
    /// time, so every day has 1,440 minutes (the data's times are naive local times too).
    pub fn price_per_slot(&self, start: DateTime, slot_minutes: u32, count: usize) -> Vec<f64> {
        let first = minute_of_day(start);
        let len = slot_minutes as usize;
        (0..count)
            .map(|slot| {
                let sum: f64 = (0..len)
                    .map(|k| self.per_minute[(first + slot * len + k) % MINUTES_PER_DAY])
                    .sum();
                sum / f64::from(slot_minutes)
            })
            .collect()
    }
}

fn minute_of_day(time: DateTime) -> usize {
    usize::from(time.hour().unsigned_abs()) * 60 + usize::from(time.minute().unsigned_abs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tariff(json: &str) -> Result<Tariff, String> {
        Tariff::from_bands(serde_json::from_str(json).map_err(|e| e.to_string())?)
    }

    #[test]
    fn beijing_bands_price_each_slot() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../data/tariffs/beijing-ev-tou-2016.json");
        let t = Tariff::read(&path).expect("the shipped tariff parses");
        let day: DateTime = "2019-11-04T00:00".parse().unwrap();
        let prices = t.price_per_slot(day, 60, 24);
        let expect = |h: usize| match h {
            0..7 | 23 => 0.3946,
            10..15 | 18..21 => 1.0044,
            _ => 0.6950,
        };
        for (h, p) in prices.iter().enumerate() {
            assert!((p - expect(h)).abs() < 1e-12, "hour {h}: {p}");
        }
    }

    #[test]
    fn straddling_slot_is_time_weighted() {
        let t = tariff(
            r#"{"name":"x","currency":"CNY","bands":[
                {"band":"a","price":1.0,"hours":[[0,12.5]]},
                {"band":"b","price":3.0,"hours":[[12.5,24]]}]}"#,
        )
        .unwrap();
        let noon: DateTime = "2020-01-01T12:15".parse().unwrap();
        let p = t.price_per_slot(noon, 30, 1);
        assert!((p[0] - 2.0).abs() < 1e-12);
    }

    #[test]
    fn gaps_and_overlaps_are_rejected() {
        let gap = tariff(
            r#"{"name":"x","currency":"CNY","bands":[{"band":"a","price":1.0,"hours":[[0,23]]}]}"#,
        );
        assert!(gap.unwrap_err().contains("no band covers 23:00"));
        let overlap = tariff(
            r#"{"name":"x","currency":"CNY","bands":[
                {"band":"a","price":1.0,"hours":[[0,24]]},
                {"band":"b","price":2.0,"hours":[[6,7]]}]}"#,
        );
        assert!(overlap.unwrap_err().contains("overlap at 06:00"));
    }
}
