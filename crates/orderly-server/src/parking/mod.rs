//! Parking and charging together (clause 十二): the task that drives `orderly_parking`'s rules.
//!
//! Inputs come from three places — occupancy reports (the API's webhook and the [`mqtt`]
//! subscriber), connector statuses of a bay's charger (the gateway's StatusNotification handler,
//! through [`Parking::connector_status`]) and a periodic tick in protocol time — and all go
//! through one task, so the reads and the write of one bay's change never interleave with
//! another change of the same bay. For each input the task loads the bay's state, feeds the
//! sans-IO core, and writes the report, the new state, the episode changes and their
//! notifications in one store commit.

pub mod mqtt;

use crate::state::AppState;
use jiff::Timestamp;
use orderly_parking::{Action, BayContext, BayState, Connector, EpisodeKind, Fen, Input, Rule};
use orderly_store::{
    EpisodeChange, NewBayState, NewIdleEpisode, NewNotification, NewOccupancyEvent, ParkingApplied,
    ParkingChange, ParkingRuleRecord, StoreError, TransactionFilter,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use utoipa::ToSchema;

/// `[parking]` in the config file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ParkingConfig {
    /// `mqtt://HOST:PORT` of the broker the bay sensors publish to; none: no MQTT.
    pub mqtt_url: Option<String>,
    /// Topics are `{prefix}/{community_id}/{bay_number}`.
    pub mqtt_topic_prefix: String,
    /// The MQTT client id. The server keeps a persistent session under it, so the broker holds
    /// the QoS 1 reports published while the server is down and delivers them when it is back.
    /// None: derived from the database and the topic prefix (stable across restarts); set it
    /// when two servers share one database, so that their sessions do not clash.
    pub mqtt_client_id: Option<String>,
    /// Real seconds between checks of thresholds and fees (they are kept in protocol time).
    pub tick_seconds: u64,
}

impl Default for ParkingConfig {
    fn default() -> Self {
        Self {
            mqtt_url: None,
            mqtt_topic_prefix: "orderly/parking".to_owned(),
            mqtt_client_id: None,
            tick_seconds: 5,
        }
    }
}

/// What is parked, as reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum VehicleDto {
    Ev,
    Fuel,
    Unknown,
}

/// What reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SourceDto {
    Sensor,
    GroundLock,
    Camera,
}

impl SourceDto {
    fn as_str(self) -> &'static str {
        match self {
            SourceDto::Sensor => "sensor",
            SourceDto::GroundLock => "ground_lock",
            SourceDto::Camera => "camera",
        }
    }
}

/// An occupancy report from a bay sensor, ground lock or plate camera (webhook body and MQTT
/// payload alike).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OccupancyReport {
    /// Whether a vehicle is in the bay.
    pub occupied: bool,
    /// ev, fuel or unknown (what a camera or ground lock can tell).
    pub vehicle: VehicleDto,
    /// Number plate, when a camera read it (1 to 16 characters).
    #[serde(default)]
    pub plate: Option<String>,
    /// When it was observed (RFC 3339); default: the server's protocol time on receipt.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub at: Option<Timestamp>,
    pub source: SourceDto,
}

impl OccupancyReport {
    fn vehicle(&self) -> orderly_parking::Vehicle {
        match self.vehicle {
            VehicleDto::Ev => orderly_parking::Vehicle::Ev,
            VehicleDto::Fuel => orderly_parking::Vehicle::Fuel,
            VehicleDto::Unknown => orderly_parking::Vehicle::Unknown,
        }
    }
}

/// Why a report was not applied.
#[derive(Debug, thiserror::Error)]
pub enum ParkingError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    OutOfOrder(#[from] orderly_parking::StepError),
    #[error("at: more than 5 minutes in the future ({0})")]
    Future(Timestamp),
    #[error("the parking task is not running")]
    Stopped,
}

enum Msg {
    Report {
        bay_id: i64,
        report: OccupancyReport,
        reply: oneshot::Sender<Result<ParkingApplied, ParkingError>>,
    },
    Connector {
        charger: String,
        status: String,
        at: Timestamp,
    },
}

/// The handle the gateway and the API post to; the task runs in [`crate::serve`].
#[derive(Clone)]
pub struct Parking {
    tx: mpsc::UnboundedSender<Msg>,
    rx: Arc<Mutex<Option<mpsc::UnboundedReceiver<Msg>>>>,
    /// Protocol time (ms) at which the last tick over every occupied bay started; 0: none yet.
    /// Shown with a bay's occupancy, so an operator (or a test) can see the rules are running
    /// and know that a given instant has been checked.
    checked_at_ms: Arc<AtomicI64>,
}

impl Default for Parking {
    fn default() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Self {
            tx,
            rx: Arc::new(Mutex::new(Some(rx))),
            checked_at_ms: Arc::new(AtomicI64::new(0)),
        }
    }
}

/// Longest a report waits for the task (a stalled database), so a device is not held forever.
const REPLY_TIMEOUT: Duration = Duration::from_secs(15);

impl Parking {
    /// When the last completed tick started (protocol time): every occupied bay has been
    /// checked as of then. None before the first tick.
    pub fn checked_at(&self) -> Option<Timestamp> {
        match self.checked_at_ms.load(Ordering::Acquire) {
            0 => None,
            ms => Timestamp::from_millisecond(ms).ok(),
        }
    }

    /// Applies an occupancy report to bay `bay_id`; returns once it is committed.
    pub async fn report(
        &self,
        bay_id: i64,
        report: OccupancyReport,
    ) -> Result<ParkingApplied, ParkingError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Msg::Report {
                bay_id,
                report,
                reply,
            })
            .map_err(|_| ParkingError::Stopped)?;
        match tokio::time::timeout(REPLY_TIMEOUT, answer).await {
            Ok(Ok(result)) => result,
            _ => Err(ParkingError::Stopped),
        }
    }

    /// A connector of `charger` reported `status` (OCPP 1.6) at protocol time `at`. Returns at
    /// once: the gateway does not wait for parking.
    pub fn connector_status(&self, charger: &str, connector_id: i32, status: &str, at: Timestamp) {
        // Connector 0 is the charger as a whole, not the bay's plug.
        if connector_id > 0 {
            let _ = self.tx.send(Msg::Connector {
                charger: charger.to_owned(),
                status: status.to_owned(),
                at,
            });
        }
    }

    fn take_receiver(&self) -> Option<mpsc::UnboundedReceiver<Msg>> {
        self.rx.lock().expect("parking receiver lock").take()
    }
}

/// Runs the parking task (and the MQTT subscriber when configured) until `stop` completes.
pub async fn run(state: AppState, stop: impl Future<Output = ()> + Send + 'static) {
    let Some(mut rx) = state.parking().take_receiver() else {
        tracing::error!("the parking task was started twice");
        return;
    };
    let config = state.config().parking.clone();
    let (mqtt_stop, mqtt_stopped) = oneshot::channel::<()>();
    let mqtt = config.mqtt_url.clone().map(|url| {
        let client_id = config
            .mqtt_client_id
            .clone()
            .unwrap_or_else(|| mqtt::default_client_id(state.config()));
        tokio::spawn(mqtt::run(
            state.clone(),
            url,
            config.mqtt_topic_prefix.clone(),
            client_id,
            async move {
                let _ = mqtt_stopped.await;
            },
        ))
    });
    let mut tick = tokio::time::interval(Duration::from_secs(config.tick_seconds.max(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => break,
            msg = rx.recv() => match msg {
                Some(Msg::Report { bay_id, report, reply }) => {
                    let _ = reply.send(apply_report(&state, bay_id, report).await);
                }
                Some(Msg::Connector { charger, status, at }) => {
                    if let Err(error) = apply_connector(&state, &charger, &status, at).await {
                        tracing::warn!(%error, %charger, %status, "parking: connector status not applied");
                    }
                }
                None => break,
            },
            _ = tick.tick() => {
                if let Err(error) = tick_all(&state).await {
                    tracing::warn!(%error, "parking: tick failed");
                }
            }
        }
    }
    drop(mqtt_stop);
    if let Some(task) = mqtt {
        let _ = task.await;
    }
}

/// `t` to the millisecond: the store keeps milliseconds, and the rules must compute on exactly
/// the instants that are stored, or a fee read back could differ by an interval at a boundary.
fn millis(t: Timestamp) -> Timestamp {
    Timestamp::from_millisecond(t.as_millisecond()).unwrap_or(t)
}

/// The rule the core works with, from the stored one.
pub fn core_rule(stored: &ParkingRuleRecord) -> Result<Rule, StoreError> {
    let r = &stored.rule;
    Rule::from_minutes(
        r.not_charging_minutes,
        r.grace_minutes,
        Fen(r.fee_per_interval_fen),
        r.interval_minutes,
        Fen(r.cap_fen),
    )
    .map_err(|e| StoreError::Corrupt(format!("parking_rules: {e}")))
}

async fn apply_report(
    state: &AppState,
    bay_id: i64,
    report: OccupancyReport,
) -> Result<ParkingApplied, ParkingError> {
    let now = millis(state.clock().now());
    let at = millis(report.at.unwrap_or(now));
    if at.duration_since(now) > jiff::SignedDuration::from_mins(5) {
        return Err(ParkingError::Future(at));
    }
    let input = Input::Occupancy(orderly_parking::Occupancy {
        occupied: report.occupied,
        vehicle: report.vehicle(),
        plate: report.plate.clone(),
        at,
    });
    let event = NewOccupancyEvent {
        occupied: report.occupied,
        vehicle: report.vehicle().as_str().to_owned(),
        plate: report.plate,
        source: report.source.as_str().to_owned(),
        at,
    };
    apply(state, bay_id, input, Some(event), None, now)
        .await
        .map(Option::unwrap_or_default)
}

async fn apply_connector(
    state: &AppState,
    charger: &str,
    status: &str,
    at: Timestamp,
) -> Result<(), ParkingError> {
    let Some(bay_id) = state.store().bay_of_charger(charger).await? else {
        return Ok(());
    };
    let Some(connector) = Connector::from_ocpp(status) else {
        return Ok(());
    };
    let input = Input::Connector {
        status: connector,
        at: millis(at),
    };
    let now = millis(state.clock().now());
    apply(state, bay_id, input, None, Some(status), now).await?;
    Ok(())
}

/// Lets time pass for every occupied bay (thresholds, grace, fees).
async fn tick_all(state: &AppState) -> Result<(), ParkingError> {
    let now = millis(state.clock().now());
    for bay in state.store().occupied_bay_states().await? {
        if let Err(error) = apply(state, bay.bay_id, Input::Tick, None, None, now).await {
            tracing::warn!(%error, bay = bay.bay_id, "parking: tick of a bay failed");
        }
    }
    state
        .parking()
        .checked_at_ms
        .store(now.as_millisecond(), Ordering::Release);
    Ok(())
}

/// One input to one bay: load, step, store. None when nothing needed writing (a tick that
/// changed nothing).
async fn apply(
    state: &AppState,
    bay_id: i64,
    input: Input,
    event: Option<NewOccupancyEvent>,
    connector_status: Option<&str>,
    now: Timestamp,
) -> Result<Option<ParkingApplied>, ParkingError> {
    let store = state.store();
    let bay = store
        .get_bay(bay_id)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("bay {bay_id}")))?;
    let rule = match store.parking_rule(&bay.community_id).await? {
        Some(r) => Some(core_rule(&r)?),
        None => None,
    };
    let stored = store.bay_parking_state(bay_id).await?;
    let mut rules: BayState = match &stored {
        Some(s) => serde_json::from_str(&s.state.rules_state)
            .map_err(|e| StoreError::Corrupt(format!("bay_parking_state.rules_state: {e}")))?,
        None => BayState::default(),
    };
    let ctx = BayContext {
        ev_only: bay.input.ev_only,
        rule,
    };
    let is_tick = matches!(input, Input::Tick);
    let actions = orderly_parking::step(&mut rules, ctx, input, now)?;
    if is_tick && actions.is_empty() {
        return Ok(None);
    }
    let mut episodes = Vec::new();
    for action in actions {
        episodes.push(match action {
            Action::Opened(ep) => open_episode(state, &bay, &rules, &ep).await?,
            Action::Accrued(fee) => EpisodeChange::Accrue { fee_fen: fee.0 },
            Action::Settled { at, fee } => EpisodeChange::Settle { at, fee_fen: fee.0 },
        });
    }
    let stay = rules.stay.as_ref();
    let change = ParkingChange {
        bay_id,
        event,
        state: NewBayState {
            occupied: stay.is_some(),
            vehicle: stay.map(|s| s.vehicle.as_str().to_owned()),
            plate: stay.and_then(|s| s.plate.clone()),
            since: stay.map(|s| s.since),
            connector_status: connector_status
                .map(str::to_owned)
                .or_else(|| stored.and_then(|s| s.state.connector_status)),
            rules_state: serde_json::to_string(&rules)
                .map_err(|e| StoreError::Corrupt(format!("rules state: {e}")))?,
        },
        episodes,
        now,
    };
    Ok(Some(store.apply_parking(change).await?))
}

/// The episode to record and its notification: to the driver of the finished transaction when
/// the charger knows them, else to the community's staff.
async fn open_episode(
    state: &AppState,
    bay: &orderly_store::Bay,
    rules: &BayState,
    ep: &orderly_parking::Episode,
) -> Result<EpisodeChange, ParkingError> {
    let store = state.store();
    let stay = rules.stay.as_ref();
    let charger = store.charger_of_bay(bay.id).await?;
    let mut payer = None;
    if ep.kind == EpisodeKind::Overstay
        && let Some(charger) = &charger
        && let Ok(id) = orderly_core::ChargePointId::parse(charger.clone())
    {
        let latest = store
            .list_transactions(&TransactionFilter {
                charger_id: Some(id),
                active: None,
                limit: Some(1),
            })
            .await?;
        // Only a transaction running during this stay: an earlier car's driver owes nothing.
        if let Some(tx) = latest.first()
            && let Some(stay) = stay
            && tx.stopped_at.is_none_or(|s| s >= stay.since)
            && let Some(tag) = &tx.id_tag
        {
            payer = store.id_tag_owner(tag.as_str()).await?;
        }
    }
    let vehicle = stay.map_or(orderly_parking::Vehicle::Unknown, |s| s.vehicle);
    let plate = stay.and_then(|s| s.plate.clone());
    let what = match (ep.kind, vehicle) {
        (EpisodeKind::Overstay, _) => "an EV has stayed after charging finished".to_owned(),
        (_, orderly_parking::Vehicle::Fuel) => "a fuel car is parked".to_owned(),
        _ => "a car is parked without charging".to_owned(),
    };
    let r = &ep.rule;
    let mut n = NewNotification::new(
        format!("parking.{}", ep.kind.as_str()),
        format!(
            "Bay {} of {}: {what} in an EV-only bay{}; idle fee {:.2} CNY per {} min from {}, \
             at most {:.2} CNY",
            bay.input.number,
            bay.community_id,
            plate
                .as_deref()
                .map(|p| format!(" ({p})"))
                .unwrap_or_default(),
            r.fee_per_interval.as_cny(),
            r.interval.as_mins(),
            ep.opened,
            r.cap.as_cny(),
        ),
    );
    n.recipient = payer.clone();
    n.charger_id = charger.clone();
    n.data = json!({
        "bay_number": bay.input.number,
        "kind": ep.kind.as_str(),
        "vehicle": vehicle.as_str(),
        "plate": plate,
        "since": ep.since,
        "opened_at": ep.opened,
        "fee_per_interval_cny": r.fee_per_interval.as_cny(),
        "interval_minutes": r.interval.as_mins(),
        "cap_cny": r.cap.as_cny(),
    });
    // One notice per episode, even if the same episode were replayed.
    n.dedupe_key = Some(format!(
        "parking:{}:{}:{}",
        bay.id,
        ep.kind.as_str(),
        ep.opened.as_millisecond()
    ));
    Ok(EpisodeChange::Open {
        episode: Box::new(NewIdleEpisode {
            kind: ep.kind.as_str().to_owned(),
            vehicle: vehicle.as_str().to_owned(),
            plate,
            charger_id: charger,
            payer,
            since: ep.since,
            opened_at: ep.opened,
            fee_fen: ep.fee.0,
            cap_fen: r.cap.0,
        }),
        notification: Box::new(n),
    })
}
