//! The simulation window and its rules, fixed by issue 3 so that results can be checked
//! independently:
//!
//! - Slots are `slot_minutes` long and aligned to the window start (`from` at 00:00); the window
//!   has `days × 1440 / slot_minutes` slots.
//! - A session belongs to the window when its plug-in time is in `[start, end)`.
//! - It occupies the slots from the first one starting at or after its plug-in to the last one
//!   ending at or before its plug-out; a plug-out after the window end is cut at the end.
//! - The energy it wants is its recorded energy, capped at what its rate allows in its slots.
//! - Its rate is its household's measured charging power (`users.csv`), 7.04 kW where that is
//!   `NA`.
//! - The capacity is the fraction times the sum of the ratings of the users who have a session
//!   in the window (one that holds no whole slot counts; a skipped row does not), constant over
//!   time.
//! - A row of the location with a missing plug-in time, or one arriving in the window with a
//!   missing plug-out time or energy, is skipped and counted in `skipped`. (A row without a
//!   plug-in time cannot be placed, so it counts in every window of its location; the data has
//!   none.)
//!
//! Times are the data's naive local clock times; the tariff bands apply to those clock hours.
//! Slot arithmetic is in whole seconds, so the rules hold exactly.
//!
//! The history a forecast may learn from is every session of the location that had left
//! (plug-out at or before the window start): nothing after the start is visible to it.

use std::collections::{BTreeSet, HashMap};

use jiff::civil::{Date, DateTime};

use crate::data::{SessionRow, UserRow};
use crate::error::{DataError, SimError};
use crate::tariff::Tariff;

/// Rating assumed for a household whose measured charging power is `NA` (kW).
pub const DEFAULT_RATING_KW: f64 = 7.04;

/// Which window of which location, and how it is cut.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowSpec {
    pub location: String,
    pub from: Date,
    pub days: u32,
    pub slot_minutes: u32,
    pub capacity_fraction: f64,
}

/// A session of the window, with the rules applied.
#[derive(Debug, Clone, PartialEq)]
pub struct SimSession {
    /// Position in [`Scenario::sessions`] (sorted by plug-in time, then session id); also the
    /// id given to the engine.
    pub index: usize,
    pub session_id: String,
    pub user_id: String,
    pub plugin: DateTime,
    pub plugout: DateTime,
    /// First slot the car may charge in.
    pub arrival_slot: usize,
    /// Slot it leaves at (exclusive); `arrival_slot` when it occupies no slot.
    pub departure_slot: usize,
    /// Energy recorded in the data (kWh).
    pub recorded_kwh: f64,
    /// Energy it wants: the recorded energy capped at rate × its slots (kWh).
    pub wanted_kwh: f64,
    /// Its household's charging power (kW).
    pub rate_kw: f64,
    /// Its user's estimated battery capacity (kWh), if known.
    pub battery_kwh: Option<f64>,
}

impl SimSession {
    pub fn slots(&self) -> usize {
        self.departure_slot - self.arrival_slot
    }

    pub fn is_present(&self, slot: usize) -> bool {
        (self.arrival_slot..self.departure_slot).contains(&slot)
    }
}

/// A session of the location that had ended before the window: what a forecast may learn from.
#[derive(Debug, Clone, PartialEq)]
pub struct HistorySession {
    pub plugin: DateTime,
    pub plugout: DateTime,
    pub energy_kwh: f64,
    pub rate_kw: f64,
}

/// Everything a policy run needs: slots, capacity, prices and sessions.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    pub spec: WindowSpec,
    /// Start of slot 0.
    pub start: DateTime,
    pub n_slots: usize,
    /// Constant capacity (kW).
    pub capacity_kw: f64,
    /// Sum of the ratings of the users with a session in the window (kW).
    pub ratings_sum_kw: f64,
    /// Price per slot (CNY/kWh).
    pub price: Vec<f64>,
    pub sessions: Vec<SimSession>,
    /// Rows skipped for a missing time or energy.
    pub skipped: usize,
    /// Sessions of the location that ended at or before the window start, oldest first.
    pub history: Vec<HistorySession>,
}

impl Scenario {
    /// Slot length in hours.
    pub fn slot_hours(&self) -> f64 {
        f64::from(self.spec.slot_minutes) / 60.0
    }

    /// Start time of a slot.
    pub fn slot_start(&self, slot: usize) -> DateTime {
        let secs = slot as i64 * i64::from(self.spec.slot_minutes) * 60;
        self.start
            .checked_add(jiff::SignedDuration::from_secs(secs))
            .unwrap_or(DateTime::MAX)
    }

    /// Builds the window from parsed rows.
    pub fn build(
        spec: WindowSpec,
        sessions_file: &std::path::Path,
        rows: &[SessionRow],
        users: &HashMap<String, UserRow>,
        tariff: &Tariff,
    ) -> Result<Self, SimError> {
        validate(&spec)?;
        let start = spec.from.to_datetime(jiff::civil::Time::midnight());
        let slot_secs = i64::from(spec.slot_minutes) * 60;
        let n_slots = spec.days as usize * 24 * 60 / spec.slot_minutes as usize;
        let window_secs = n_slots as i64 * slot_secs;
        let secs_from_start = |t: DateTime| start.duration_until(t).as_secs();

        let mut sessions = Vec::new();
        let mut history = Vec::new();
        let mut skipped = 0;
        for row in rows.iter().filter(|r| r.location == spec.location) {
            let user = users.get(&row.user_id).ok_or_else(|| DataError::Field {
                file: sessions_file.to_path_buf(),
                line: row.line,
                field: "user_id",
                value: row.user_id.clone(),
                reason: "no such user in the users file".into(),
            })?;
            let rate_kw = user.charging_power_kw.unwrap_or(DEFAULT_RATING_KW);
            let Some(plugin) = row.plugin else {
                skipped += 1;
                continue;
            };
            let offset_in = secs_from_start(plugin);
            let in_window = (0..window_secs).contains(&offset_in);
            let (Some(plugout), Some(recorded_kwh)) = (row.plugout, row.energy_kwh) else {
                if in_window {
                    skipped += 1;
                }
                continue;
            };
            if !in_window {
                if plugout <= start {
                    history.push(HistorySession {
                        plugin,
                        plugout,
                        energy_kwh: recorded_kwh,
                        rate_kw,
                    });
                }
                continue;
            }
            let offset_out = secs_from_start(plugout).min(window_secs);
            let arrival_slot =
                offset_in.div_euclid(slot_secs) + i64::from(offset_in.rem_euclid(slot_secs) != 0);
            let departure_slot = offset_out.div_euclid(slot_secs).max(arrival_slot);
            let (arrival_slot, departure_slot) = (arrival_slot as usize, departure_slot as usize);
            let hours = (departure_slot - arrival_slot) as f64 * slot_secs as f64 / 3600.0;
            sessions.push(SimSession {
                index: 0,
                session_id: row.session_id.clone(),
                user_id: row.user_id.clone(),
                plugin,
                plugout,
                arrival_slot,
                departure_slot,
                recorded_kwh,
                wanted_kwh: recorded_kwh.min(rate_kw * hours),
                rate_kw,
                battery_kwh: user.battery_kwh,
            });
        }
        if sessions.is_empty() {
            return Err(SimError::EmptyWindow {
                location: spec.location.clone(),
                from: spec.from,
                days: spec.days,
            });
        }
        sessions.sort_by(|a, b| (a.plugin, &a.session_id).cmp(&(b.plugin, &b.session_id)));
        for (index, s) in sessions.iter_mut().enumerate() {
            s.index = index;
        }
        history.sort_by_key(|h| h.plugin);

        let window_users: BTreeSet<&str> = sessions.iter().map(|s| s.user_id.as_str()).collect();
        let ratings_sum_kw: f64 = window_users
            .iter()
            .map(|u| users[*u].charging_power_kw.unwrap_or(DEFAULT_RATING_KW))
            .sum();
        let price = tariff.price_per_slot(start, spec.slot_minutes, n_slots);
        Ok(Self {
            capacity_kw: spec.capacity_fraction * ratings_sum_kw,
            spec,
            start,
            n_slots,
            ratings_sum_kw,
            price,
            sessions,
            skipped,
            history,
        })
    }

    /// Total energy wanted (kWh).
    pub fn energy_requested_kwh(&self) -> f64 {
        self.sessions.iter().map(|s| s.wanted_kwh).sum()
    }
}

fn validate(spec: &WindowSpec) -> Result<(), SimError> {
    if spec.days == 0 {
        return Err(SimError::Argument {
            arg: "days",
            reason: "must be at least 1".into(),
        });
    }
    if spec.slot_minutes == 0 || 1440 % spec.slot_minutes != 0 {
        return Err(SimError::Argument {
            arg: "slot-minutes",
            reason: format!("{} does not divide a day", spec.slot_minutes),
        });
    }
    if !(spec.capacity_fraction.is_finite() && spec.capacity_fraction > 0.0) {
        return Err(SimError::Argument {
            arg: "capacity-fraction",
            reason: format!("{} is not a positive number", spec.capacity_fraction),
        });
    }
    Ok(())
}
