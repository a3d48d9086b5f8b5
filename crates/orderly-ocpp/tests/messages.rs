//! Every action's realistic payloads validate, convert to the typed messages and back to equal,
//! still-valid JSON; enums reject values outside the schema.

mod fixtures;

use orderly_ocpp::v16::*;
use orderly_ocpp::validate::{Direction, validate};
use orderly_ocpp::{Action, ChargerRequest, CsmsRequest, Timestamp};
use serde_json::{Value, json};

/// JSON equality where numbers compare by value (`32` == `32.0`): typed `f64` fields print
/// integers sent by a charger as `32.0`, which is the same JSON number.
fn same_json(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same_json(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_json(v, w)))
        }
        _ => a == b,
    }
}

fn round_trip<R: Request>(seen: &mut Vec<Action>) {
    let (_, req, resp) = fixtures::all()
        .into_iter()
        .find(|(a, _, _)| *a == R::ACTION)
        .expect("fixture for every action");
    validate(R::ACTION, Direction::Request, &req).unwrap_or_else(|e| panic!("{}: {e}", R::ACTION));
    validate(R::ACTION, Direction::Response, &resp)
        .unwrap_or_else(|e| panic!("{}: {e}", R::ACTION));

    let typed: R =
        serde_json::from_value(req.clone()).unwrap_or_else(|e| panic!("{}: {e}", R::ACTION));
    let back = serde_json::to_value(&typed).unwrap();
    assert!(
        same_json(&req, &back),
        "{} request:\n{req}\n{back}",
        R::ACTION
    );
    validate(R::ACTION, Direction::Request, &back).unwrap();

    let typed: R::Response =
        serde_json::from_value(resp.clone()).unwrap_or_else(|e| panic!("{}: {e}", R::ACTION));
    let back = serde_json::to_value(&typed).unwrap();
    assert!(
        same_json(&resp, &back),
        "{} response:\n{resp}\n{back}",
        R::ACTION
    );
    validate(R::ACTION, Direction::Response, &back).unwrap();
    seen.push(R::ACTION);
}

#[test]
fn every_action_round_trips_through_its_types() {
    let mut seen = Vec::new();
    round_trip::<AuthorizeRequest>(&mut seen);
    round_trip::<BootNotificationRequest>(&mut seen);
    round_trip::<CancelReservationRequest>(&mut seen);
    round_trip::<ChangeAvailabilityRequest>(&mut seen);
    round_trip::<ChangeConfigurationRequest>(&mut seen);
    round_trip::<ClearCacheRequest>(&mut seen);
    round_trip::<ClearChargingProfileRequest>(&mut seen);
    round_trip::<DataTransferRequest>(&mut seen);
    round_trip::<DiagnosticsStatusNotificationRequest>(&mut seen);
    round_trip::<FirmwareStatusNotificationRequest>(&mut seen);
    round_trip::<GetCompositeScheduleRequest>(&mut seen);
    round_trip::<GetConfigurationRequest>(&mut seen);
    round_trip::<GetDiagnosticsRequest>(&mut seen);
    round_trip::<GetLocalListVersionRequest>(&mut seen);
    round_trip::<HeartbeatRequest>(&mut seen);
    round_trip::<MeterValuesRequest>(&mut seen);
    round_trip::<RemoteStartTransactionRequest>(&mut seen);
    round_trip::<RemoteStopTransactionRequest>(&mut seen);
    round_trip::<ReserveNowRequest>(&mut seen);
    round_trip::<ResetRequest>(&mut seen);
    round_trip::<SendLocalListRequest>(&mut seen);
    round_trip::<SetChargingProfileRequest>(&mut seen);
    round_trip::<StartTransactionRequest>(&mut seen);
    round_trip::<StatusNotificationRequest>(&mut seen);
    round_trip::<StopTransactionRequest>(&mut seen);
    round_trip::<TriggerMessageRequest>(&mut seen);
    round_trip::<UnlockConnectorRequest>(&mut seen);
    round_trip::<UpdateFirmwareRequest>(&mut seen);
    seen.sort();
    assert_eq!(
        seen,
        Action::ALL,
        "a Request impl per action, each with its own action"
    );
}

#[test]
fn request_enums_cover_each_side() {
    for (action, req, _) in fixtures::all() {
        let cp = ChargerRequest::from_payload(action, req.clone());
        assert_eq!(cp.is_some(), action.is_charger_initiated(), "{action}");
        if let Some(r) = cp {
            let r = r.unwrap();
            assert_eq!(r.action(), action);
            assert!(same_json(&r.to_payload(), &req), "{action}");
        }
        let cs = CsmsRequest::from_payload(action, req.clone());
        assert_eq!(cs.is_some(), action.is_csms_initiated(), "{action}");
        if let Some(r) = cs {
            let r = r.unwrap();
            assert_eq!(r.action(), action);
            assert!(same_json(&r.to_payload(), &req), "{action}");
        }
    }
}

#[test]
fn typed_stop_transaction_reads_the_fields_the_server_needs() {
    let (_, req, _) = fixtures::all()
        .into_iter()
        .find(|(a, _, _)| *a == Action::StopTransaction)
        .unwrap();
    let stop: StopTransactionRequest = serde_json::from_value(req).unwrap();
    assert_eq!(stop.meter_stop, 15400);
    assert_eq!(stop.reason, Some(StopReason::EvDisconnected));
    let data = stop.transaction_data.unwrap();
    assert_eq!(data.len(), 2);
    let first = &data[0].sampled_value[0];
    assert_eq!(
        first.measurand_or_default(),
        Measurand::EnergyActiveImportRegister
    );
    assert_eq!(first.unit_or_default().as_str(), "Wh");
    let voltage = &data[0].sampled_value[2];
    assert_eq!(voltage.phase.map(Phase::as_str), Some("L1-N"));
    let end = &data[1].sampled_value[0];
    assert_eq!(end.measurand, None);
    assert_eq!(
        end.measurand_or_default(),
        Measurand::EnergyActiveImportRegister
    );
    assert_eq!(end.context_or_default(), ReadingContext::TransactionEnd);
}

#[test]
fn zoneless_timestamps_from_chargers_are_read_as_utc() {
    let req = json!({"connectorId": 2, "idTag": "T1", "meterStart": 0, "timestamp": "2026-11-26T22:00:00"});
    validate(Action::StartTransaction, Direction::Request, &req).unwrap();
    let start: StartTransactionRequest = serde_json::from_value(req).unwrap();
    assert_eq!(
        start.timestamp,
        Timestamp::parse("2026-11-26T22:00:00Z").unwrap()
    );
    assert_eq!(
        serde_json::to_value(&start).unwrap()["timestamp"],
        "2026-11-26T22:00:00Z"
    );
}

#[test]
fn wire_enums_are_exact() {
    assert_eq!(
        "Sample.Clock".parse::<ReadingContext>(),
        Ok(ReadingContext::SampleClock)
    );
    assert!("sample.clock".parse::<ReadingContext>().is_err());
    assert!(serde_json::from_value::<ChargePointStatus>(json!("Busy")).is_err());
    assert_eq!(
        serde_json::to_value(ChargePointStatus::SuspendedEvse).unwrap(),
        "SuspendedEVSE"
    );
    for m in Measurand::ALL {
        assert_eq!(m.as_str().parse::<Measurand>(), Ok(*m));
    }
    assert_eq!(UnitOfMeasure::KWh.to_string(), "kWh");
}

#[test]
fn responses_built_by_the_server_are_schema_valid() {
    let now = Timestamp::parse("2026-11-26T08:00:00.5Z").unwrap();
    let boot = BootNotificationResponse {
        status: RegistrationStatus::Pending,
        current_time: now,
        interval: 60,
    };
    validate(
        Action::BootNotification,
        Direction::Response,
        &serde_json::to_value(&boot).unwrap(),
    )
    .unwrap();
    let start = StartTransactionResponse {
        id_tag_info: IdTagInfo::new(AuthorizationStatus::Invalid),
        transaction_id: 9,
    };
    validate(
        Action::StartTransaction,
        Direction::Response,
        &serde_json::to_value(&start).unwrap(),
    )
    .unwrap();
    for empty in [
        serde_json::to_value(MeterValuesResponse {}).unwrap(),
        serde_json::to_value(StopTransactionResponse::default()).unwrap(),
    ] {
        assert_eq!(empty, json!({}));
    }
}
