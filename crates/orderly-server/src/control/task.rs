//! The controller task of one community: owns the sans-IO `Controller`, takes [`Msg`]s from the
//! gateway and the API, sleeps until the controller's next deadline (protocol time, through
//! [`Clock::real_until`](crate::clock::Clock::real_until)), and carries out its actions:
//! profiles go to the chargers through the registry as operator calls, whose answers come back
//! as `Input::ProfileResult`; compliance changes and command reports are persisted.
//!
//! A call to a charger is awaited in its own small task, so a slow charger never holds up the
//! plan of the others.

use super::Msg;
use super::wish::{self, SessionFacts};
use crate::gateway::registry::{Command, OperatorCall};
use crate::state::AppState;
use orderly_control::{
    Action, CommunitySpec, Controller, DayType, Input, ProfileOutcome, RequestId,
};
use orderly_core::ChargePointId;
use orderly_grid::{CommandId, CommandKind, CommandSource, GridCommand};
use orderly_ocpp::{CallOutcome, ErrorCode};
use orderly_store::{CommunityRecord, GridCommandKind, GridCommandRecord, TransactionFilter};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use tokio::sync::mpsc;

/// Messages handled before the controller gets a chance to re-plan: a burst of meter values
/// (every charger reporting on the same tick) costs one re-plan, not one per message.
const MAX_BATCH: usize = 4096;

/// The controller's view of a stored grid command (None if cancelled).
pub fn grid_command(record: &GridCommandRecord) -> Option<GridCommand> {
    if record.cancelled_at.is_some() {
        return None;
    }
    let source = serde_json::from_value::<CommandSource>(record.source.clone()).unwrap_or(
        CommandSource::Api {
            actor: "unknown".into(),
        },
    );
    Some(GridCommand {
        id: CommandId(record.id),
        kind: match record.kind {
            GridCommandKind::Limit => CommandKind::Limit { kw: record.kw },
            GridCommandKind::Reduce => CommandKind::Reduce { kw: record.kw },
        },
        start: record.start,
        end: record.end,
        received: record.received,
        source,
    })
}

struct Task {
    state: AppState,
    community: String,
    record: CommunityRecord,
    /// The community as last handed to the controller (the forecast needs its chargers' ratings
    /// and time zone).
    spec: CommunitySpec,
    chargers: HashSet<ChargePointId>,
    controller: Controller,
    /// When to learn the forecast again (None: `forecast_days` is 0).
    next_forecast: Option<jiff::Timestamp>,
    /// Grid commands handed to the controller and not over, as last sent.
    commands: HashMap<CommandId, GridCommand>,
    /// To post charger answers back to ourselves without keeping the channel open.
    weak: mpsc::WeakUnboundedSender<Msg>,
}

/// Run the controller of `community` until its channel closes.
pub async fn run(
    state: AppState,
    community: String,
    spec: CommunitySpec,
    mut rx: mpsc::UnboundedReceiver<Msg>,
    weak: mpsc::WeakUnboundedSender<Msg>,
) {
    let clock = *state.clock();
    let record = match state.store().get_community(&community).await {
        Ok(Some(record)) => record,
        Ok(None) => return,
        Err(error) => {
            tracing::error!(%community, %error, "controller cannot read its community");
            return;
        }
    };
    let config = state.config().control.controller_config();
    let chargers = spec.chargers.iter().map(|c| c.id.clone()).collect();
    let controller = match Controller::new(spec.clone(), config, clock.now()) {
        Ok(controller) => controller,
        Err(error) => {
            tracing::error!(%community, %error, "controller not started");
            return;
        }
    };
    let mut task = Task {
        state,
        community,
        record,
        spec,
        chargers,
        controller,
        next_forecast: None,
        commands: HashMap::new(),
        weak,
    };
    task.bootstrap().await;
    task.learn_forecast().await;
    tracing::info!(community = %task.community, chargers = task.chargers.len(), "controller running");
    loop {
        task.dispatch();
        let deadline = task.controller.poll_timeout();
        tokio::select! {
            msg = rx.recv() => {
                let Some(msg) = msg else { break };
                task.on_msg(msg).await;
                for _ in 0..MAX_BATCH {
                    match rx.try_recv() {
                        Ok(msg) => task.on_msg(msg).await,
                        Err(_) => break,
                    }
                }
            }
            () = sleep_until(&clock, deadline) => {
                task.controller.handle_timeout(clock.now());
            }
            () = sleep_until(&clock, task.next_forecast) => {
                task.learn_forecast().await;
            }
        }
    }
    tracing::info!(community = %task.community, "controller stopped");
}

async fn sleep_until(clock: &crate::clock::Clock, deadline: Option<jiff::Timestamp>) {
    match deadline {
        Some(at) => tokio::time::sleep(clock.real_until(at)).await,
        None => std::future::pending().await,
    }
}

impl Task {
    fn now(&self) -> jiff::Timestamp {
        self.state.clock().now()
    }

    /// What the controller must know when it starts: grid commands not over, transactions
    /// running on its chargers, chargers already connected.
    async fn bootstrap(&mut self) {
        let now = self.now();
        let store = self.state.store().clone();
        self.sync_commands().await;
        let running = store
            .list_transactions(&TransactionFilter {
                charger_id: None,
                active: Some(true),
                limit: Some(100_000),
            })
            .await;
        match running {
            Ok(transactions) => {
                for t in transactions {
                    let (Some(started_at), Some(meter_start), Some(connector_id)) =
                        (t.started_at, t.meter_start_wh, t.connector_id)
                    else {
                        continue;
                    };
                    if self.chargers.contains(&t.charger_id) {
                        self.started(
                            i64::from(t.id.0),
                            t.charger_id,
                            connector_id,
                            t.id_tag,
                            meter_start,
                            started_at,
                        )
                        .await;
                    }
                }
            }
            Err(error) => tracing::error!(%error, "controller: reading transactions failed"),
        }
        let connected: Vec<ChargePointId> = self
            .chargers
            .iter()
            .filter(|c| self.state.registry().is_connected(c))
            .cloned()
            .collect();
        for charger in connected {
            self.controller
                .handle(Input::ChargerConnected { charger }, now);
        }
    }

    /// Bring the controller's grid commands in line with the store: new or changed commands
    /// are (re)sent, cancelled ones withdrawn. (Commands given through the API are sent at
    /// once; this catches the OpenADR VEN's and those stored before a restart.)
    async fn sync_commands(&mut self) {
        let now = self.now();
        let stored = match self
            .state
            .store()
            .open_grid_commands(&self.community, now)
            .await
        {
            Ok(stored) => stored,
            Err(error) => {
                tracing::error!(%error, "controller: reading grid commands failed");
                return;
            }
        };
        let open: HashMap<CommandId, GridCommand> = stored
            .iter()
            .filter_map(grid_command)
            .map(|c| (c.id, c))
            .collect();
        let withdrawn: Vec<CommandId> = self
            .commands
            .keys()
            .filter(|id| !open.contains_key(id))
            .copied()
            .collect();
        for id in withdrawn {
            self.commands.remove(&id);
            // A command that simply ended needs no cancelling; the controller ignores a
            // cancellation of one it already finished.
            self.controller
                .handle(Input::GridCommandCancelled { id }, now);
        }
        for (id, command) in open {
            if self.commands.get(&id) != Some(&command) {
                self.controller
                    .handle(Input::GridCommand(command.clone()), now);
                self.commands.insert(id, command);
            }
        }
    }

    async fn started(
        &mut self,
        transaction_id: i64,
        charger: ChargePointId,
        connector_id: i32,
        id_tag: Option<orderly_core::IdTag>,
        meter_start_wh: i64,
        at: jiff::Timestamp,
    ) {
        let facts = SessionFacts {
            transaction_id,
            id_tag,
            started_at: at,
        };
        let wish = self.resolve(&facts).await;
        let now = self.now();
        self.controller.handle(
            Input::TransactionStarted {
                transaction_id,
                charger,
                connector_id,
                meter_start_wh,
                at,
                wish,
            },
            now,
        );
    }

    async fn resolve(&self, facts: &SessionFacts) -> orderly_control::ResolvedWish {
        match wish::resolve(self.state.store(), &self.record, facts).await {
            Ok(wish) => wish,
            Err(error) => {
                // The plan must go on: a session without its wish is planned on the
                // community's defaults until the store answers again.
                tracing::error!(%error, transaction = facts.transaction_id, "wish not resolved; community defaults used");
                orderly_control::ResolvedWish {
                    departure: facts
                        .started_at
                        .saturating_add(jiff::SignedDuration::from_secs_f64(
                            self.record.default_stay_hours * 3600.0,
                        ))
                        .unwrap_or(facts.started_at),
                    energy_kwh: self.record.default_energy_kwh,
                    emergency: false,
                    source: orderly_control::WishSource::Community,
                }
            }
        }
    }

    async fn on_msg(&mut self, msg: Msg) {
        match msg {
            Msg::Input(input) => {
                let now = self.now();
                match &input {
                    Input::GridCommand(c) => {
                        self.commands.insert(c.id, c.clone());
                    }
                    Input::GridCommandCancelled { id } => {
                        self.commands.remove(id);
                    }
                    _ => {}
                }
                self.controller.handle(input, now);
            }
            Msg::Started {
                transaction_id,
                charger,
                connector_id,
                id_tag,
                meter_start_wh,
                at,
            } => {
                self.started(
                    transaction_id,
                    charger,
                    connector_id,
                    id_tag,
                    meter_start_wh,
                    at,
                )
                .await;
            }
            Msg::Rewish {
                transaction_id,
                reply,
            } => {
                let session = self.rewish(transaction_id).await;
                let _ = reply.send(session);
            }
            Msg::Plan { reply } => {
                let _ = reply.send(self.controller.plan_view());
            }
            Msg::Reload => self.reload().await,
        }
    }

    /// Hand the transaction's newly resolved wish to the controller, re-plan now, and return
    /// the session as planned.
    async fn rewish(&mut self, transaction_id: i64) -> Option<orderly_control::SessionView> {
        let id = orderly_store::TransactionId(i32::try_from(transaction_id).ok()?);
        let transaction = match self.state.store().get_transaction(id).await {
            Ok(Some(t)) => t,
            Ok(None) => return None,
            Err(error) => {
                tracing::error!(%error, "controller: reading a transaction failed");
                return None;
            }
        };
        let facts = SessionFacts {
            transaction_id,
            id_tag: transaction.id_tag,
            started_at: transaction.started_at.unwrap_or_else(|| self.now()),
        };
        let wish = self.resolve(&facts).await;
        let now = self.now();
        self.controller.handle(
            Input::Wish {
                transaction_id,
                wish,
            },
            now,
        );
        self.controller.handle_timeout(now);
        self.dispatch();
        self.controller
            .plan_view()
            .sessions
            .into_iter()
            .find(|s| s.transaction_id == transaction_id)
    }

    async fn reload(&mut self) {
        let store = self.state.store().clone();
        let (record, chargers) = match (
            store.get_community(&self.community).await,
            store.community_chargers(&self.community).await,
        ) {
            (Ok(Some(record)), Ok(chargers)) => (record, chargers),
            (Ok(None), _) => return,
            (Err(error), _) | (_, Err(error)) => {
                tracing::error!(%error, "controller: reloading the community failed");
                return;
            }
        };
        let spec = super::spec::community_spec(&record, &chargers);
        let now = self.now();
        let changed = spec != self.spec;
        self.spec = spec.clone();
        self.controller.handle(Input::Community(spec), now);
        let members: HashSet<ChargePointId> = chargers.into_iter().map(|c| c.charger_id).collect();
        // A charger attached while connected gets its profiles now, not at its next boot.
        let joined: Vec<ChargePointId> = members
            .difference(&self.chargers)
            .filter(|c| self.state.registry().is_connected(c))
            .cloned()
            .collect();
        for charger in joined {
            self.controller
                .handle(Input::ChargerConnected { charger }, now);
        }
        self.chargers = members;
        self.record = record;
        self.sync_commands().await;
        // Chargers joined or left (their history counts or no longer does), or the time zone
        // or ratings changed: learn again, once the messages queued now are handled (attaching
        // many chargers costs one learning, not one each).
        if changed && self.next_forecast.is_some() {
            self.next_forecast = Some(now);
        }
    }

    /// Learn the forecast of arrivals from the community's completed transactions of the last
    /// `forecast_days` days and hand it to the controller (see [`super::forecast`]); again in a
    /// (protocol) day, or in an hour if the store did not answer.
    async fn learn_forecast(&mut self) {
        let settings = &self.state.config().control;
        let days = settings.forecast_days;
        if days == 0 {
            self.next_forecast = None;
            return;
        }
        let slot_minutes = settings.controller_config().slot_minutes;
        let now = self.now();
        let later = |secs: i64| now.checked_add(jiff::SignedDuration::from_secs(secs)).ok();
        self.next_forecast = later(86_400);
        let tz = match jiff::tz::TimeZone::get(&self.spec.timezone) {
            Ok(tz) => tz,
            Err(error) => {
                tracing::error!(community = %self.community, %error, "forecast not learned: time zone");
                return;
            }
        };
        let Some((from, to)) = super::forecast::window(now, &tz, days) else {
            return;
        };
        let rows = match self
            .state
            .store()
            .completed_transactions(&self.community, from, to)
            .await
        {
            Ok(rows) => rows,
            Err(error) => {
                tracing::error!(community = %self.community, %error, "forecast not learned: reading transactions failed; retried in an hour");
                self.next_forecast = later(3600);
                return;
            }
        };
        match super::forecast::learn(&self.spec, slot_minutes, from, to, &rows) {
            Ok(learned) => {
                let f = &learned.forecast;
                tracing::info!(
                    community = %self.community,
                    days,
                    weekdays = learned.days.weekdays,
                    weekend_days = learned.days.weekend_days,
                    sessions = learned.sessions,
                    skipped = learned.skipped,
                    weekday_ghosts = f.ghosts_of(DayType::Weekday).len(),
                    weekend_ghosts = f.ghosts_of(DayType::Weekend).len(),
                    weekday_kwh = f.daily_kwh(DayType::Weekday),
                    weekend_kwh = f.daily_kwh(DayType::Weekend),
                    "forecast of arrivals learned"
                );
                if learned.skipped > 0 {
                    tracing::warn!(community = %self.community, skipped = learned.skipped, "forecast: implausible transactions skipped (negative energy, stop before start, more than the charger gives, or a charger no longer in the community)");
                }
                self.controller
                    .handle(Input::Forecast(learned.forecast), now);
            }
            Err(error) => {
                tracing::error!(community = %self.community, %error, "forecast not learned");
            }
        }
    }

    /// Carry out every pending action.
    fn dispatch(&mut self) {
        while let Some(action) = self.controller.poll_action() {
            match action {
                Action::SetProfile {
                    request,
                    charger,
                    request_body,
                } => {
                    let payload = serde_json::to_value(&request_body).unwrap_or(Value::Null);
                    self.call(
                        request,
                        charger,
                        orderly_ocpp::Action::SetChargingProfile,
                        payload,
                    );
                }
                Action::ClearProfile {
                    request,
                    charger,
                    request_body,
                } => {
                    let payload = serde_json::to_value(&request_body).unwrap_or(Value::Null);
                    self.call(
                        request,
                        charger,
                        orderly_ocpp::Action::ClearChargingProfile,
                        payload,
                    );
                }
                Action::Compliance {
                    charger,
                    compliant,
                    at,
                    detail,
                } => {
                    if compliant {
                        tracing::info!(%charger, %detail, "charger compliant again");
                    } else {
                        tracing::warn!(%charger, %detail, "charger non-compliant");
                    }
                    let store = self.state.store().clone();
                    let community = self.community.clone();
                    tokio::spawn(async move {
                        if let Err(error) = store
                            .append_compliance_event(
                                &charger,
                                Some(&community),
                                compliant,
                                at,
                                &detail,
                            )
                            .await
                        {
                            tracing::error!(%error, "compliance event not recorded");
                        }
                    });
                }
                Action::CommandReport(report) => {
                    let store = self.state.store().clone();
                    let at = self.now();
                    tokio::spawn(async move {
                        let id = report.command.0;
                        let value = serde_json::to_value(&report).unwrap_or(Value::Null);
                        if let Err(error) = store.set_grid_command_report(id, value, at).await {
                            tracing::error!(%error, command = id, "command report not recorded");
                        }
                    });
                }
            }
        }
    }

    /// Send a profile call to a charger in its own task; its outcome comes back as an input.
    fn call(
        &self,
        request: RequestId,
        charger: ChargePointId,
        action: orderly_ocpp::Action,
        payload: Value,
    ) {
        let state = self.state.clone();
        let weak = self.weak.clone();
        tokio::spawn(async move {
            let outcome = send_call(&state, &charger, action, payload).await;
            if outcome != ProfileOutcome::Accepted {
                tracing::debug!(%charger, ?action, ?outcome, "profile not accepted");
            }
            if let Some(tx) = weak.upgrade() {
                let _ = tx.send(Msg::Input(Input::ProfileResult {
                    charger,
                    request,
                    outcome,
                }));
            }
        });
    }
}

async fn send_call(
    state: &AppState,
    charger: &ChargePointId,
    action: orderly_ocpp::Action,
    payload: Value,
) -> ProfileOutcome {
    let Some(sender) = state.registry().sender(charger) else {
        return ProfileOutcome::Failed;
    };
    let (reply, answer) = tokio::sync::oneshot::channel();
    let call = OperatorCall {
        action,
        payload,
        timeout: state.config().call_timeout(),
        reply,
    };
    if sender.send(Command::Call(Box::new(call))).await.is_err() {
        return ProfileOutcome::Failed;
    }
    match answer.await {
        Ok(Ok(CallOutcome::Result(response))) => {
            match response.get("status").and_then(Value::as_str) {
                Some("Accepted") => ProfileOutcome::Accepted,
                // ClearChargingProfile: no profile matched, so the charger holds none of
                // those: what clearing wanted.
                Some("Unknown") if action == orderly_ocpp::Action::ClearChargingProfile => {
                    ProfileOutcome::Accepted
                }
                Some("NotSupported") => ProfileOutcome::NotSupported,
                _ => ProfileOutcome::Rejected,
            }
        }
        Ok(Ok(CallOutcome::Error {
            code: ErrorCode::NotSupported | ErrorCode::NotImplemented,
            ..
        })) => ProfileOutcome::NotSupported,
        _ => ProfileOutcome::Failed,
    }
}
