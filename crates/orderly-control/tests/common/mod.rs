//! A simulated community for the controller's tests: the real `Controller`, and in-memory
//! charge points that hold the profiles they accept (applied by `orderly_ocpp::smart`, the
//! OCPP 1.6 rules as a charge point applies them) and whose cars draw what those profiles allow.
//! Protocol time is simulated; answers are immediate unless the test stops them.

#![allow(dead_code)]

use jiff::{SignedDuration, Timestamp};
use orderly_control::community::HourlyTariff;
use orderly_control::{
    Action, ChargerSpec, CommunitySpec, Controller, ControllerConfig, Input, ProfileOutcome,
    RateUnit, ResolvedWish, WishSource,
};
use orderly_core::ChargePointId;
use orderly_grid::{CommandId, CommandKind, CommandReport, CommandSource, GridCommand};
use orderly_ocpp::smart::{Electrical, ProfileSet, RunningTransaction};

pub const TZ: &str = "Asia/Shanghai";

pub fn community(n: usize, rating_kva: f64, base_kw: f64) -> CommunitySpec {
    CommunitySpec {
        id: "sim".into(),
        rating_kva,
        power_factor: 0.9,
        // An evening peak: capacity lowest 18:00–22:00 local.
        base_load_kw: (0..24)
            .map(|h| {
                if (18..22).contains(&h) {
                    base_kw * 1.25
                } else {
                    base_kw
                }
            })
            .collect(),
        timezone: TZ.into(),
        tariff: HourlyTariff {
            // Beijing-like TOU: valley 23–7, peak 10–15 and 18–21.
            cny_per_kwh: (0..24)
                .map(|h| match h {
                    23 | 0..=6 => 0.3,
                    10..=14 | 18..=20 => 1.0,
                    _ => 0.6,
                })
                .collect(),
        },
        emergency_price_cny_per_kwh: 1.5,
        max_emergencies: Some(1),
        default_stay_hours: 10.0,
        default_energy_kwh: 10.0,
        chargers: (0..n)
            .map(|i| ChargerSpec {
                id: ChargePointId::parse(format!("CP{i:03}")).unwrap(),
                phases: if i % 4 == 3 { 3 } else { 1 },
                voltage_v: 220.0,
                max_current_a: if i % 4 == 3 { 16.0 } else { 32.0 },
                min_current_a: 6.0,
                rate_unit: if i % 5 == 1 {
                    RateUnit::Watts
                } else {
                    RateUnit::Amperes
                },
            })
            .collect(),
    }
}

pub fn config() -> ControllerConfig {
    ControllerConfig {
        slot_minutes: 15,
        horizon_slots: 96,
        replan_interval: SignedDuration::from_secs(60),
        profile_validity: SignedDuration::from_secs(300),
        retry_after: SignedDuration::from_secs(30),
        compliance_tolerance_ratio: 0.1,
        compliance_tolerance_w: 500.0,
        compliance_samples: 2,
    }
}

#[derive(Debug, Clone)]
pub struct Car {
    pub wanted_wh: f64,
    pub max_w: f64,
    pub departure: Timestamp,
    pub delivered_wh: f64,
    pub emergency: bool,
}

#[derive(Debug)]
pub struct Cp {
    pub spec: ChargerSpec,
    pub profiles: ProfileSet,
    pub car: Option<(i64, Timestamp, Car)>,
    /// Energy register (Wh).
    pub register_wh: f64,
    pub ignore_limits: bool,
    pub power_w: f64,
    /// Finished visits: (wanted, delivered, departure).
    pub visits: Vec<(f64, f64, Timestamp)>,
}

impl Cp {
    pub fn el(&self) -> Electrical {
        Electrical {
            voltage_v: self.spec.voltage_v,
            phases: self.spec.phases,
        }
    }
    fn running(&self) -> Option<RunningTransaction> {
        self.car
            .as_ref()
            .map(|(tx, started, _)| RunningTransaction {
                transaction_id: *tx,
                started: *started,
            })
    }
    /// What the charge point lets the car draw at `t` (W).
    pub fn limit_w(&self, t: Timestamp) -> f64 {
        let hw = self.spec.max_kw() * 1000.0;
        self.profiles
            .limit_w(1, self.running(), t, self.el())
            .map_or(hw, |l| l.min(hw))
    }
    /// Invariant S's worst case at `t` if the platform stopped now: the running transaction's
    /// limit or a newly arriving car's (TxDefault), whichever is higher.
    pub fn worst_w(&self, t: Timestamp) -> f64 {
        let hw = self.spec.max_kw() * 1000.0;
        let new_car = self
            .profiles
            .limit_w(1, None, t, self.el())
            .map_or(hw, |l| l.min(hw));
        let running = match self.running() {
            Some(r) => self
                .profiles
                .limit_w(1, Some(r), t, self.el())
                .map_or(hw, |l| l.min(hw)),
            None => 0.0,
        };
        running.max(new_car)
    }
    pub fn apply(&mut self, action: &Action) -> ProfileOutcome {
        match action {
            Action::SetProfile { request_body, .. } => {
                self.profiles.set(
                    request_body.connector_id,
                    request_body.cs_charging_profiles.clone(),
                );
                ProfileOutcome::Accepted
            }
            Action::ClearProfile { request_body, .. } => {
                self.profiles.clear(request_body);
                ProfileOutcome::Accepted
            }
            _ => unreachable!(),
        }
    }
}

pub struct Sim {
    pub ctl: Controller,
    pub community: CommunitySpec,
    pub cps: Vec<Cp>,
    pub now: Timestamp,
    pub answering: bool,
    /// Actions emitted but not delivered (when not answering).
    pub unanswered: Vec<Action>,
    pub next_tx: i64,
    pub limits: Vec<(Timestamp, Timestamp, f64)>,
    /// Commands received while the platform no longer reached the charge points.
    pub late_limits: Vec<(Timestamp, Timestamp, f64)>,
    pub reports: Vec<CommandReport>,
    pub compliance: Vec<(ChargePointId, bool)>,
    /// (t, drawn W, capacity W) of every instant the drawn load exceeded capacity.
    pub over: Vec<(Timestamp, f64, f64)>,
    pub peak_ratio: f64,
    pub sent: usize,
    /// Charge points (by index) that answer NotSupported to an idle guard (a stack-level-9
    /// connector TxDefaultProfile of limit 0) and keep what they held.
    pub refusing_idle_guards: Vec<bool>,
    last_meter: Timestamp,
    next_command: i64,
}

impl Sim {
    pub fn new(community: CommunitySpec, config: ControllerConfig, start: &str) -> Sim {
        let n = community.chargers.len();
        Self::with_refusing(community, config, start, vec![false; n])
    }

    /// As `new`, with the charge points marked in `refusing` answering NotSupported to idle
    /// guards from the start.
    pub fn with_refusing(
        community: CommunitySpec,
        config: ControllerConfig,
        start: &str,
        refusing: Vec<bool>,
    ) -> Sim {
        let now: Timestamp = start.parse().unwrap();
        let ctl = Controller::new(community.clone(), config, now).unwrap();
        let cps = community
            .chargers
            .iter()
            .map(|s| Cp {
                spec: s.clone(),
                profiles: ProfileSet::new(),
                car: None,
                register_wh: 0.0,
                ignore_limits: false,
                power_w: 0.0,
                visits: Vec::new(),
            })
            .collect();
        let mut sim = Sim {
            ctl,
            community,
            cps,
            now,
            answering: true,
            unanswered: Vec::new(),
            next_tx: 1,
            limits: Vec::new(),
            late_limits: Vec::new(),
            reports: Vec::new(),
            compliance: Vec::new(),
            over: Vec::new(),
            peak_ratio: 0.0,
            sent: 0,
            refusing_idle_guards: refusing,
            last_meter: now,
            next_command: 1,
        };
        for i in 0..sim.cps.len() {
            let charger = sim.cps[i].spec.id.clone();
            sim.input(Input::ChargerConnected { charger });
        }
        sim.timeout();
        sim
    }

    /// Like the server's driver: hand the input over, then run the controller if it is due.
    pub fn input(&mut self, input: Input) {
        self.ctl.handle(input, self.now);
        self.pump();
        self.timeout();
    }

    /// Deliver the controller's actions to the charge points and their answers back.
    pub fn pump(&mut self) {
        while let Some(a) = self.ctl.poll_action() {
            match &a {
                Action::SetProfile {
                    request, charger, ..
                }
                | Action::ClearProfile {
                    request, charger, ..
                } => {
                    self.sent += 1;
                    if !self.answering {
                        self.unanswered.push(a.clone());
                        continue;
                    }
                    let i = self.index(charger);
                    // An idle guard goes to a connector without a transaction (answers are
                    // immediate here); a pair's guard of limit 0 (a car not planned now) is a
                    // different request the charge point accepts.
                    let idle = is_idle_guard(&a) && self.cps[i].car.is_none();
                    let outcome = if self.refusing_idle_guards[i] && idle {
                        ProfileOutcome::NotSupported
                    } else {
                        self.cps[i].apply(&a)
                    };
                    let (request, charger) = (*request, charger.clone());
                    self.ctl.handle(
                        Input::ProfileResult {
                            charger,
                            request,
                            outcome,
                        },
                        self.now,
                    );
                }
                Action::Compliance {
                    charger, compliant, ..
                } => {
                    self.compliance.push((charger.clone(), *compliant));
                }
                Action::CommandReport(r) => self.reports.push(r.clone()),
            }
        }
    }

    pub fn index(&self, id: &ChargePointId) -> usize {
        self.cps.iter().position(|c| &c.spec.id == id).unwrap()
    }

    pub fn timeout(&mut self) {
        if self.ctl.poll_timeout().is_some_and(|t| t <= self.now) {
            self.ctl.handle_timeout(self.now);
            self.pump();
        }
    }

    pub fn plug(
        &mut self,
        i: usize,
        energy_kwh: f64,
        stay_h: f64,
        max_w: f64,
        emergency: bool,
    ) -> i64 {
        let tx = self.next_tx;
        self.next_tx += 1;
        let departure = self.now + SignedDuration::from_secs_f64(stay_h * 3600.0);
        let car = Car {
            wanted_wh: energy_kwh * 1000.0,
            max_w,
            departure,
            delivered_wh: 0.0,
            emergency,
        };
        self.cps[i].car = Some((tx, self.now, car));
        let input = Input::TransactionStarted {
            transaction_id: tx,
            charger: self.cps[i].spec.id.clone(),
            connector_id: 1,
            meter_start_wh: self.cps[i].register_wh.floor() as i64,
            at: self.now,
            wish: ResolvedWish {
                departure,
                energy_kwh,
                emergency,
                source: WishSource::Explicit,
            },
        };
        self.input(input);
        tx
    }

    pub fn unplug(&mut self, i: usize) {
        if let Some((tx, _, car)) = self.cps[i].car.take() {
            self.cps[i].profiles.end_transaction(1);
            self.cps[i].power_w = 0.0;
            self.cps[i]
                .visits
                .push((car.wanted_wh, car.delivered_wh, self.now));
            self.input(Input::TransactionStopped {
                transaction_id: tx,
                at: self.now,
            });
        }
    }

    pub fn capacity_w(&self, t: Timestamp) -> f64 {
        self.capacity_with(t, false)
    }

    pub fn capacity_with(&self, t: Timestamp, late: bool) -> f64 {
        let tz = jiff::tz::TimeZone::get(TZ).unwrap();
        let h = t.to_zoned_datetime(tz).hour() as usize;
        let mut kw = (self.community.rating_kva * self.community.power_factor
            - self.community.base_load_kw[h])
            .max(0.0);
        let late = if late { &self.late_limits[..] } else { &[] };
        for &(a, b, l) in self.limits.iter().chain(late) {
            if a <= t && t < b {
                kw = kw.min(l);
            }
        }
        kw * 1000.0
    }

    pub fn limit(&mut self, kw: f64, start: Timestamp, end: Timestamp) -> CommandId {
        let id = CommandId(self.next_command);
        self.next_command += 1;
        if self.answering {
            self.limits.push((start, end, kw));
        } else {
            self.late_limits.push((start, end, kw));
        }
        self.input(Input::GridCommand(GridCommand {
            id,
            kind: CommandKind::Limit { kw },
            start,
            end,
            received: self.now,
            source: CommandSource::Api {
                actor: "test".into(),
            },
        }));
        id
    }

    /// Advance protocol time by `secs` in steps of `step` seconds: cars draw what their
    /// charge point allows, meters report every 30 s, cars leave at their departure.
    pub fn run(&mut self, secs: i64, step: i64) {
        let debug = std::env::var("SIM_DEBUG").is_ok();
        let end = self.now + SignedDuration::from_secs(secs);
        while self.now < end {
            self.timeout();
            let t = self.now;
            let mut total = 0.0;
            for cp in &mut self.cps {
                let p = match &cp.car {
                    Some((_, _, car)) => {
                        let need =
                            (car.wanted_wh - car.delivered_wh).max(0.0) * 3600.0 / step as f64;
                        let allowed = if cp.ignore_limits {
                            f64::INFINITY
                        } else {
                            cp.limit_w(t)
                        };
                        allowed
                            .min(car.max_w)
                            .min(cp.spec.max_kw() * 1000.0)
                            .min(need)
                    }
                    None => 0.0,
                };
                cp.power_w = p;
                total += p;
            }
            let cap = self.capacity_w(t);
            if cap > 0.0 {
                self.peak_ratio = self.peak_ratio.max(total / cap);
            }
            if total > cap + 1.0 {
                self.over.push((t, total, cap));
            }
            for cp in &mut self.cps {
                let e = cp.power_w * step as f64 / 3600.0;
                cp.register_wh += e;
                if let Some((_, _, car)) = &mut cp.car {
                    car.delivered_wh += e;
                }
            }
            if debug && t.as_second() % 900 == 0 {
                let v = self.ctl.plan_view();
                eprintln!(
                    "{t} cap {:.1} drawn {:.1} planned {:?}",
                    cap / 1000.0,
                    total / 1000.0,
                    &v.planned_kw[..8]
                );
                if let Some(p) = self.ctl.last_problem() {
                    eprintln!(
                        "  problem cap {:?} price {:?}",
                        &p.capacity_kw[..10],
                        &p.price[..10]
                    );
                    for x in &p.sessions {
                        eprintln!("   {:?}", x);
                    }
                }
                eprintln!(
                    "  noncompliant {:?} unconfirmed {:?} compliance log {:?} err {:?}",
                    v.non_compliant_chargers,
                    v.unconfirmed_chargers,
                    self.compliance,
                    self.ctl.last_error()
                );
                for (cp, s) in self
                    .cps
                    .iter()
                    .filter_map(|c| c.car.as_ref().map(|x| (c, x)))
                {
                    let sv = v.sessions.iter().find(|x| x.transaction_id == s.0);
                    eprintln!(
                        "  {} tx {} got {:.0}/{:.0} Wh dep {} at {:.0} W; expected {:?}",
                        cp.spec.id.as_str(),
                        s.0,
                        s.2.delivered_wh,
                        s.2.wanted_wh,
                        s.2.departure,
                        cp.power_w,
                        sv.map(|x| x.expected_energy_by_departure_kwh)
                    );
                }
            }
            self.now = t + SignedDuration::from_secs(step);
            if self.now.duration_since(self.last_meter).as_secs() >= 30 {
                self.last_meter = self.now;
                for i in 0..self.cps.len() {
                    let cp = &self.cps[i];
                    let input = Input::Meter {
                        charger: cp.spec.id.clone(),
                        connector_id: 1,
                        transaction_id: cp.car.as_ref().map(|c| c.0),
                        at: self.now,
                        power_w: Some(cp.power_w),
                        energy_wh: Some(cp.register_wh),
                        soc_percent: None,
                    };
                    self.input(input);
                }
            }
            for i in 0..self.cps.len() {
                if self.cps[i]
                    .car
                    .as_ref()
                    .is_some_and(|c| c.2.departure <= self.now)
                {
                    self.unplug(i);
                }
            }
        }
    }

    /// Σ of the charge points' worst-case draw (Invariant S) at every minute of the next
    /// `hours` (all profile changes are on minute boundaries or at `now`), against capacity.
    pub fn invariant_s_violations(&self, cps: &[Cp], hours: i64) -> Vec<(Timestamp, f64, f64)> {
        self.invariant_s_with(cps, hours, false)
    }

    /// As `invariant_s_violations`; `late`: also under the commands received after the
    /// platform stopped reaching the charge points (what it sent for them reached them).
    pub fn invariant_s_with(
        &self,
        cps: &[Cp],
        hours: i64,
        late: bool,
    ) -> Vec<(Timestamp, f64, f64)> {
        let mut out = Vec::new();
        let t0 = self.now;
        let first_minute = Timestamp::from_second((t0.as_second() / 60 + 1) * 60).unwrap();
        let instants = std::iter::once(t0)
            .chain((0..hours * 60).map(|k| first_minute + SignedDuration::from_secs(60 * k)));
        for t in instants {
            let total: f64 = cps.iter().map(|c| c.worst_w(t)).sum();
            let cap = self.capacity_with(t, late);
            if total > cap + 1.0 {
                out.push((t, total, cap));
            }
        }
        out
    }
}

/// Whether `a` sets an idle guard: a connector TxDefaultProfile at the guard's stack level
/// whose limits are all 0.
pub fn is_idle_guard(a: &Action) -> bool {
    let Action::SetProfile { request_body, .. } = a else {
        return false;
    };
    let p = &request_body.cs_charging_profiles;
    request_body.connector_id > 0
        && p.stack_level == orderly_control::profile::GUARD_STACK_LEVEL
        && p.charging_profile_purpose == orderly_ocpp::v16::ChargingProfilePurpose::TxDefaultProfile
        && p.charging_schedule
            .charging_schedule_period
            .iter()
            .all(|x| x.limit == 0.0)
}
