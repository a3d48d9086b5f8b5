//! An in-memory charge point, built only on `Frame` and the typed messages, talks to a `Connection`
//! through strings on a simulated clock: boot, authorize, remote start, meter values, charging
//! profiles, remote stop, and a command the charge point never answers.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use orderly_ocpp::v16::*;
use orderly_ocpp::{
    Action, CallOutcome, ChargerRequest, Connection, CsmsRequest, Event, Frame, Timestamp,
};
use serde_json::Value;

/// Minimal charge-point side: sends CALLs one at a time, answers the central system's CALLs.
struct ChargePoint {
    next_id: u32,
    awaiting: Option<(String, Action)>,
    /// Answers received to our CALLs, in order.
    results: Vec<(Action, Value)>,
    /// Requests the central system sent us.
    commands: Vec<CsmsRequest>,
    /// When true, CALLs from the central system are swallowed (a hung charger).
    deaf: bool,
    transaction: Option<i64>,
}

impl ChargePoint {
    fn new() -> Self {
        ChargePoint {
            next_id: 0,
            awaiting: None,
            results: Vec::new(),
            commands: Vec::new(),
            deaf: false,
            transaction: None,
        }
    }

    fn call<R: Request>(&mut self, req: &R) -> String {
        assert!(
            self.awaiting.is_none(),
            "the charge point keeps one outstanding CALL"
        );
        self.next_id += 1;
        let id = format!("cp-{}", self.next_id);
        self.awaiting = Some((id.clone(), R::ACTION));
        Frame::Call {
            unique_id: id,
            action: R::ACTION.as_str().into(),
            payload: serde_json::to_value(req).unwrap(),
        }
        .to_text()
    }

    /// Handle a text from the central system; returns what the charge point sends back.
    fn receive(&mut self, text: &str) -> Option<String> {
        match Frame::parse(text).expect("the central system sends valid frames") {
            Frame::CallResult { unique_id, payload } => {
                let (id, action) = self.awaiting.take().expect("a result we waited for");
                assert_eq!(unique_id, id);
                if action == Action::StartTransaction {
                    self.transaction = Some(payload["transactionId"].as_i64().unwrap());
                }
                self.results.push((action, payload));
                None
            }
            Frame::CallError {
                code, description, ..
            } => panic!("central system refused: {code} {description}"),
            Frame::Call {
                unique_id,
                action,
                payload,
            } => {
                if self.deaf {
                    return None;
                }
                let action: Action = action.parse().unwrap();
                let req = CsmsRequest::from_payload(action, payload)
                    .expect("a CSMS action")
                    .unwrap();
                let reply = match &req {
                    CsmsRequest::RemoteStartTransaction(_) => {
                        serde_json::to_value(RemoteStartTransactionResponse {
                            status: AcceptedRejected::Accepted,
                        })
                    }
                    CsmsRequest::RemoteStopTransaction(r) => {
                        serde_json::to_value(RemoteStopTransactionResponse {
                            status: if Some(r.transaction_id) == self.transaction {
                                AcceptedRejected::Accepted
                            } else {
                                AcceptedRejected::Rejected
                            },
                        })
                    }
                    CsmsRequest::SetChargingProfile(_) => {
                        serde_json::to_value(SetChargingProfileResponse {
                            status: ChargingProfileStatus::Accepted,
                        })
                    }
                    CsmsRequest::GetCompositeSchedule(r) => {
                        serde_json::to_value(GetCompositeScheduleResponse {
                            status: AcceptedRejected::Accepted,
                            connector_id: Some(r.connector_id),
                            schedule_start: Some(ts("2026-11-26T22:00:00Z")),
                            charging_schedule: Some(ChargingSchedule {
                                duration: Some(r.duration),
                                start_schedule: None,
                                charging_rate_unit: ChargingRateUnit::A,
                                charging_schedule_period: vec![ChargingSchedulePeriod {
                                    start_period: 0,
                                    limit: 10.5,
                                    number_phases: None,
                                }],
                                min_charging_rate: None,
                            }),
                        })
                    }
                    other => panic!("unexpected command {other:?}"),
                }
                .unwrap();
                self.commands.push(req);
                Some(
                    Frame::CallResult {
                        unique_id,
                        payload: reply,
                    }
                    .to_text(),
                )
            }
        }
    }
}

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

/// The central system's logic for the test: answers charger requests like a real one would.
struct CentralSystem {
    conn: Connection,
    next_tx: i64,
    completed: Vec<(Action, CallOutcome)>,
    seen: Vec<Action>,
}

impl CentralSystem {
    fn on_event(&mut self, ev: Event) -> Option<String> {
        match ev {
            Event::Request { unique_id, request } => {
                self.seen.push(request.action());
                let now = ts("2026-11-26T22:00:00Z");
                Some(match request {
                    ChargerRequest::BootNotification(_) => self.conn.respond(
                        &unique_id,
                        &BootNotificationResponse {
                            status: RegistrationStatus::Accepted,
                            current_time: now,
                            interval: 300,
                        },
                    ),
                    ChargerRequest::Heartbeat(_) => self
                        .conn
                        .respond(&unique_id, &HeartbeatResponse { current_time: now }),
                    ChargerRequest::Authorize(a) => self.conn.respond(
                        &unique_id,
                        &AuthorizeResponse {
                            id_tag_info: IdTagInfo::new(if a.id_tag == "GOOD" {
                                AuthorizationStatus::Accepted
                            } else {
                                AuthorizationStatus::Invalid
                            }),
                        },
                    ),
                    ChargerRequest::StartTransaction(_) => {
                        self.next_tx += 1;
                        self.conn.respond(
                            &unique_id,
                            &StartTransactionResponse {
                                id_tag_info: IdTagInfo::new(AuthorizationStatus::Accepted),
                                transaction_id: self.next_tx,
                            },
                        )
                    }
                    ChargerRequest::StatusNotification(_) => self
                        .conn
                        .respond(&unique_id, &StatusNotificationResponse {}),
                    ChargerRequest::MeterValues(_) => {
                        self.conn.respond(&unique_id, &MeterValuesResponse {})
                    }
                    ChargerRequest::StopTransaction(_) => self
                        .conn
                        .respond(&unique_id, &StopTransactionResponse::default()),
                    other => panic!("unexpected {other:?}"),
                })
            }
            Event::CallCompleted {
                action, outcome, ..
            } => {
                self.completed.push((action, outcome));
                None
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// Wires the two sides with string queues; the clock only moves when the test says so.
struct Link {
    cp: ChargePoint,
    cs: CentralSystem,
    to_cs: VecDeque<String>,
    now: Instant,
}

impl Link {
    /// Deliver everything in flight in both directions until quiet.
    fn pump(&mut self) {
        loop {
            let mut progressed = false;
            while let Some(text) = self.cs.conn.poll_transmit() {
                progressed = true;
                if let Some(answer) = self.cp.receive(&text) {
                    self.to_cs.push_back(answer);
                }
            }
            while let Some(text) = self.to_cs.pop_front() {
                progressed = true;
                let ev = self.cs.conn.handle_text(&text, self.now);
                if let Some(answer) = self.cs.on_event(ev)
                    && let Some(reply) = self.cp.receive(&answer)
                {
                    self.to_cs.push_back(reply);
                }
            }
            if !progressed {
                break;
            }
        }
    }

    fn cp_calls<R: Request>(&mut self, req: &R) -> Value {
        let text = self.cp.call(req);
        self.to_cs.push_back(text);
        self.pump();
        let (action, payload) = self.cp.results.last().cloned().expect("answered");
        assert_eq!(action, R::ACTION);
        payload
    }

    fn advance(&mut self, by: Duration) {
        self.now += by;
        if self.cs.conn.poll_timeout().is_some_and(|t| t <= self.now) {
            for ev in self.cs.conn.handle_timeout(self.now) {
                assert!(self.cs.on_event(ev).is_none());
            }
        }
        self.pump();
    }
}

fn sampled(value: &str, measurand: Measurand, unit: UnitOfMeasure) -> SampledValue {
    SampledValue {
        value: value.into(),
        context: None,
        format: None,
        measurand: Some(measurand),
        phase: None,
        location: None,
        unit: Some(unit),
    }
}

#[test]
fn charge_point_and_central_system_complete_a_session() {
    let mut link = Link {
        cp: ChargePoint::new(),
        cs: CentralSystem {
            conn: Connection::new(Default::default()),
            next_tx: 100,
            completed: Vec::new(),
            seen: Vec::new(),
        },
        to_cs: VecDeque::new(),
        now: Instant::now(),
    };

    let boot = link.cp_calls(&BootNotificationRequest {
        charge_point_vendor: "Orderly".into(),
        charge_point_model: "SimCP".into(),
        charge_point_serial_number: None,
        charge_box_serial_number: None,
        firmware_version: Some("1.0".into()),
        iccid: None,
        imsi: None,
        meter_type: None,
        meter_serial_number: None,
    });
    assert_eq!(boot["status"], "Accepted");
    link.cp_calls(&StatusNotificationRequest {
        connector_id: 1,
        error_code: ChargePointErrorCode::NoError,
        info: None,
        status: ChargePointStatus::Available,
        timestamp: None,
        vendor_id: None,
        vendor_error_code: None,
    });
    assert_eq!(
        link.cp_calls(&AuthorizeRequest {
            id_tag: "BAD".into()
        })["idTagInfo"]["status"],
        "Invalid"
    );

    // Operator: remote start with a TxProfile, then ask for the composite schedule. Both are
    // queued at once; the second goes out only after the first is answered.
    let profile = ChargingProfile {
        charging_profile_id: 1,
        transaction_id: None,
        stack_level: 0,
        charging_profile_purpose: ChargingProfilePurpose::TxProfile,
        charging_profile_kind: ChargingProfileKind::Relative,
        recurrency_kind: None,
        valid_from: None,
        valid_to: None,
        charging_schedule: ChargingSchedule {
            duration: None,
            start_schedule: None,
            charging_rate_unit: ChargingRateUnit::A,
            charging_schedule_period: vec![ChargingSchedulePeriod {
                start_period: 0,
                limit: 6.3,
                number_phases: Some(1),
            }],
            min_charging_rate: None,
        },
    };
    let now = link.now;
    link.cs
        .conn
        .send(
            &RemoteStartTransactionRequest {
                connector_id: Some(1),
                id_tag: "GOOD".into(),
                charging_profile: Some(profile.clone()),
            },
            now,
        )
        .unwrap();
    link.cs
        .conn
        .send(
            &GetCompositeScheduleRequest {
                connector_id: 1,
                duration: 3600,
                charging_rate_unit: Some(ChargingRateUnit::A),
            },
            now,
        )
        .unwrap();
    assert_eq!(link.cs.conn.queued(), 1);
    link.pump();
    assert_eq!(link.cs.completed.len(), 2);
    let (action, outcome) = link.cs.completed[1].clone();
    assert_eq!(action, Action::GetCompositeSchedule);
    let schedule = outcome.decode::<GetCompositeScheduleRequest>().unwrap();
    assert_eq!(
        schedule.charging_schedule.unwrap().charging_schedule_period[0].limit,
        10.5
    );
    assert!(
        matches!(&link.cp.commands[0], CsmsRequest::RemoteStartTransaction(r) if r.charging_profile.as_ref() == Some(&profile))
    );

    // The charge point starts the transaction it was asked to, meters, and is told its limit.
    let start = link.cp_calls(&StartTransactionRequest {
        connector_id: 1,
        id_tag: "GOOD".into(),
        meter_start: 1000,
        reservation_id: None,
        timestamp: ts("2026-11-26T22:00:05Z"),
    });
    let tx = start["transactionId"].as_i64().unwrap();
    assert_eq!(tx, 101);
    link.advance(Duration::from_secs(60));
    link.cp_calls(&MeterValuesRequest {
        connector_id: 1,
        transaction_id: Some(tx),
        meter_value: vec![MeterValue {
            timestamp: ts("2026-11-26T22:01:05Z"),
            sampled_value: vec![
                sampled(
                    "1120",
                    Measurand::EnergyActiveImportRegister,
                    UnitOfMeasure::Wh,
                ),
                sampled("7.2", Measurand::PowerActiveImport, UnitOfMeasure::KW),
            ],
        }],
    });
    let now = link.now;
    link.cs
        .conn
        .send(
            &SetChargingProfileRequest {
                connector_id: 1,
                cs_charging_profiles: ChargingProfile {
                    transaction_id: Some(tx),
                    ..profile
                },
            },
            now,
        )
        .unwrap();
    link.cs
        .conn
        .send(&RemoteStopTransactionRequest { transaction_id: tx }, now)
        .unwrap();
    link.pump();
    let statuses: Vec<_> = link
        .cs
        .completed
        .iter()
        .map(|(a, o)| {
            (
                *a,
                o.clone()
                    .decode::<RemoteStopTransactionRequest>()
                    .ok()
                    .map(|r| r.status),
            )
        })
        .collect();
    assert_eq!(statuses[2].0, Action::SetChargingProfile);
    assert_eq!(
        statuses[3],
        (
            Action::RemoteStopTransaction,
            Some(AcceptedRejected::Accepted)
        )
    );
    link.cp_calls(&StopTransactionRequest {
        id_tag: Some("GOOD".into()),
        meter_stop: 8000,
        timestamp: ts("2026-11-26T23:00:00Z"),
        transaction_id: tx,
        reason: Some(StopReason::Remote),
        transaction_data: None,
    });

    // A charge point that stops answering: the call times out on the simulated clock only.
    link.cp.deaf = true;
    let now = link.now;
    link.cs
        .conn
        .send(
            &RemoteStartTransactionRequest {
                connector_id: Some(1),
                id_tag: "GOOD".into(),
                charging_profile: None,
            },
            now,
        )
        .unwrap();
    link.pump();
    link.advance(Duration::from_secs(29));
    assert_eq!(link.cs.completed.len(), 4);
    link.advance(Duration::from_secs(1));
    assert_eq!(
        link.cs.completed.last().unwrap(),
        &(Action::RemoteStartTransaction, CallOutcome::Timeout)
    );
    // ... and the connection still serves the charger's own requests.
    link.cp_calls(&HeartbeatRequest {});

    assert_eq!(
        link.cs.seen,
        [
            Action::BootNotification,
            Action::StatusNotification,
            Action::Authorize,
            Action::StartTransaction,
            Action::MeterValues,
            Action::StopTransaction,
            Action::Heartbeat,
        ]
    );
}
