//! Resolving what a session wants: departure time, energy and emergency.
//!
//! Field by field, the first source that says something wins:
//! 1. the resident's wish for this transaction (`PUT /transactions/{id}/wish`),
//! 2. the id tag's defaults (`PUT /id-tags/{tag}/wish-defaults`),
//! 3. the id tag's history: the median stay and median energy of its last
//!    [`HISTORY_SESSIONS`] finished sessions, used once there are at least [`HISTORY_MIN`],
//! 4. the community's defaults.
//!
//! The wish's `source` is the highest of these that contributed a field. Emergency is only ever
//! explicit.
//!
//! A target state of charge becomes energy as `(target − SoC at plug-in) / 100 × battery_kwh /
//! CHARGING_EFFICIENCY`: the SoC at plug-in is the transaction's first SoC meter reading, or
//! [`ASSUMED_ARRIVAL_SOC`] % when the charger reports none (AC chargers mostly cannot read it:
//! the car does not tell them over IEC 61851); the division turns battery-side energy into
//! grid-side energy, which is what the meter and the plan count.

use jiff::{SignedDuration, Timestamp};
use orderly_control::{ResolvedWish, WishSource};
use orderly_core::IdTag;
use orderly_store::{CommunityRecord, Store, StoreError, TransactionId};

/// Finished sessions looked at to learn a resident's habits.
pub const HISTORY_SESSIONS: u32 = 10;
/// Fewer finished sessions than this teach nothing.
pub const HISTORY_MIN: usize = 3;
/// State of charge assumed at plug-in when the charger reports none (%).
pub const ASSUMED_ARRIVAL_SOC: f64 = 20.0;
/// Battery-side energy per grid-side energy of AC charging (charger and on-board charger
/// losses, typically 85–92 %).
pub const CHARGING_EFFICIENCY: f64 = 0.9;

/// What is known of the session whose wish is resolved.
#[derive(Debug, Clone)]
pub struct SessionFacts {
    pub transaction_id: i64,
    pub id_tag: Option<IdTag>,
    pub started_at: Timestamp,
}

fn hours(h: f64) -> SignedDuration {
    SignedDuration::from_secs_f64((h * 3600.0).clamp(0.0, 1e9))
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// The next instant at or after `after` whose local clock time (in `tz`) is `hh_mm`.
pub fn next_local_time(after: Timestamp, hh_mm: &str, tz: &str) -> Option<Timestamp> {
    let time: jiff::civil::Time = format!("{hh_mm}:00").parse().ok()?;
    let tz = jiff::tz::TimeZone::get(tz).ok()?;
    let local = after.to_zoned_datetime(tz.clone());
    let today = local.date();
    let mut candidate = today.to_datetime(time).to_zoned_datetime(tz.clone()).ok()?;
    if candidate.timestamp() <= after {
        let tomorrow = today.tomorrow().ok()?;
        candidate = tomorrow.to_datetime(time).to_zoned_datetime(tz).ok()?;
    }
    Some(candidate.timestamp())
}

/// `"HH:MM"` (24-hour clock) or an error naming the field.
pub fn check_local_time(field: &str, hh_mm: &str) -> Result<(), String> {
    let ok = hh_mm.len() == 5 && format!("{hh_mm}:00").parse::<jiff::civil::Time>().is_ok();
    if ok {
        Ok(())
    } else {
        Err(format!("{field}: {hh_mm:?} is not a local time HH:MM"))
    }
}

/// Energy (kWh, grid side) to go from the SoC at plug-in to `target` % of `battery_kwh`.
pub fn energy_for_soc(target: f64, soc_at_plug_in: Option<f64>, battery_kwh: f64) -> f64 {
    let from = soc_at_plug_in.unwrap_or(ASSUMED_ARRIVAL_SOC);
    ((target - from).max(0.0) / 100.0) * battery_kwh / CHARGING_EFFICIENCY
}

/// The first SoC reading of a transaction (%).
async fn soc_at_plug_in(
    store: &Store,
    transaction: TransactionId,
) -> Result<Option<f64>, StoreError> {
    Ok(store
        .transaction_meter_values(transaction)
        .await?
        .into_iter()
        .find(|s| s.measurand == "SoC" && s.value_number.is_some())
        .and_then(|s| s.value_number))
}

/// Resolves the wish of a session from the store (see the module docs).
pub async fn resolve(
    store: &Store,
    community: &CommunityRecord,
    session: &SessionFacts,
) -> Result<ResolvedWish, StoreError> {
    let start = session.started_at;
    let tx = TransactionId(i32::try_from(session.transaction_id).unwrap_or(i32::MAX));
    let mut departure: Option<(Timestamp, WishSource)> = None;
    let mut energy: Option<(f64, WishSource)> = None;
    let mut emergency = false;

    if let Some(w) = store.get_wish(tx).await? {
        emergency = w.emergency;
        departure = w
            .departure
            .or_else(|| {
                w.stay_hours
                    .map(|h| start.saturating_add(hours(h)).unwrap_or(start))
            })
            .map(|d| (d, WishSource::Explicit));
        energy = match (w.energy_kwh, w.target_soc_percent, w.battery_kwh) {
            (Some(e), _, _) => Some((e, WishSource::Explicit)),
            (None, Some(target), Some(battery)) => {
                let soc = soc_at_plug_in(store, tx).await?;
                Some((energy_for_soc(target, soc, battery), WishSource::Explicit))
            }
            _ => None,
        };
        // An explicit emergency with nothing else said still counts as an explicit wish.
        if emergency && departure.is_none() && energy.is_none() {
            let d = start
                .saturating_add(hours(community.default_stay_hours))
                .unwrap_or(start);
            departure = Some((d, WishSource::Explicit));
        }
    }
    if let Some(tag) = &session.id_tag {
        if (departure.is_none() || energy.is_none())
            && let Some(d) = store.get_wish_defaults(tag).await?
        {
            if departure.is_none() {
                departure = d
                    .departure_local
                    .as_deref()
                    .and_then(|t| next_local_time(start, t, &community.timezone))
                    .or_else(|| {
                        d.stay_hours
                            .map(|h| start.saturating_add(hours(h)).unwrap_or(start))
                    })
                    .map(|t| (t, WishSource::IdTagDefault));
            }
            if energy.is_none() {
                energy = d.energy_kwh.map(|e| (e, WishSource::IdTagDefault));
            }
        }
        if departure.is_none() || energy.is_none() {
            let history = store.finished_sessions(tag, HISTORY_SESSIONS).await?;
            if history.len() >= HISTORY_MIN {
                if departure.is_none() {
                    let stay = median(
                        history
                            .iter()
                            .map(|s| {
                                s.stopped_at.duration_since(s.started_at).as_secs_f64() / 3600.0
                            })
                            .collect(),
                    );
                    departure = Some((
                        start.saturating_add(hours(stay)).unwrap_or(start),
                        WishSource::History,
                    ));
                }
                if energy.is_none() {
                    let kwh = median(
                        history
                            .iter()
                            .map(|s| s.energy_wh as f64 / 1000.0)
                            .collect(),
                    );
                    energy = Some((kwh.max(0.0), WishSource::History));
                }
            }
        }
    }
    let (departure, d_source) = departure.unwrap_or((
        start
            .saturating_add(hours(community.default_stay_hours))
            .unwrap_or(start),
        WishSource::Community,
    ));
    let (energy_kwh, e_source) =
        energy.unwrap_or((community.default_energy_kwh, WishSource::Community));
    let rank = |s: WishSource| match s {
        WishSource::Explicit => 0,
        WishSource::IdTagDefault => 1,
        WishSource::History => 2,
        WishSource::Community => 3,
    };
    let source = if emergency {
        WishSource::Explicit
    } else if rank(d_source) <= rank(e_source) {
        d_source
    } else {
        e_source
    };
    Ok(ResolvedWish {
        departure,
        energy_kwh,
        emergency,
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_departure_is_the_next_occurrence() {
        let after: Timestamp = "2026-11-26T10:00:00Z".parse().unwrap(); // 18:00 in Shanghai
        let next = next_local_time(after, "07:30", "Asia/Shanghai").unwrap();
        assert_eq!(next, "2026-11-26T23:30:00Z".parse::<Timestamp>().unwrap());
        let next = next_local_time(after, "19:00", "Asia/Shanghai").unwrap();
        assert_eq!(next, "2026-11-26T11:00:00Z".parse::<Timestamp>().unwrap());
        assert!(check_local_time("departure_local", "07:30").is_ok());
        assert!(check_local_time("departure_local", "7:30").is_err());
        assert!(check_local_time("departure_local", "25:00").is_err());
    }

    #[test]
    fn soc_converts_to_grid_energy() {
        // 20 % → 80 % of 60 kWh = 36 kWh in the battery, 40 kWh from the grid at 90 %.
        assert!((energy_for_soc(80.0, None, 60.0) - 40.0).abs() < 1e-9);
        assert_eq!(energy_for_soc(50.0, Some(70.0), 60.0), 0.0);
    }

    #[test]
    fn median_of_odd_and_even() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
    }
}
