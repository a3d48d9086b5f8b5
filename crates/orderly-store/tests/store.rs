//! Behaviour of the store, on SQLite and (when configured) PostgreSQL.

mod common;

use common::{cp, each_backend, t, tag};
use orderly_store::*;

fn new_charger(id: &str, password: Option<&str>) -> NewCharger {
    NewCharger {
        id: cp(id),
        password: password.map(str::to_owned),
        description: Some(format!("{id} in garage B")),
    }
}

fn boot() -> BootInfo {
    BootInfo {
        vendor: "Acme".into(),
        model: "Wallbox 7".into(),
        serial_number: Some("SN-1".into()),
        firmware_version: Some("1.2.3".into()),
        ..BootInfo::default()
    }
}

fn start(charger: &str, connector: i32, id_tag: &str, meter: i64, at: &str) -> StartTransaction {
    StartTransaction {
        charger_id: cp(charger),
        connector_id: connector,
        id_tag: tag(id_tag),
        meter_start_wh: meter,
        timestamp: t(at),
        reservation_id: None,
    }
}

fn energy(value: &str, at: &str) -> MeterValue {
    MeterValue {
        timestamp: t(at),
        sampled_values: vec![SampledValue {
            value: value.into(),
            ..SampledValue::default()
        }],
    }
}

const NOW: &str = "2026-11-26T12:00:00Z";

#[tokio::test]
async fn migrations_run_at_open_and_reopen_is_idempotent() {
    each_backend(|url| async move {
        let store = Store::open(&url).await.unwrap();
        let expected = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            Backend::Postgres
        };
        assert_eq!(store.backend(), expected);
        assert!(store.list_chargers().await.unwrap().is_empty());
        store
            .register_charger(new_charger("CP1", None), t(NOW))
            .await
            .unwrap();
        store.close().await;
        // A second open finds the migrations applied and the data there.
        let store = Store::open(&url).await.unwrap();
        assert_eq!(store.list_chargers().await.unwrap().len(), 1);
        store.close().await;
    })
    .await;
}

#[tokio::test]
async fn unsupported_urls_are_refused() {
    let err = Store::open("mysql://localhost/x").await.unwrap_err();
    assert!(matches!(err, StoreError::UnsupportedUrl(_)), "{err}");
}

#[tokio::test]
async fn charger_crud_and_passwords() {
    each_backend(|url| async move {
        let store = Store::open(&url).await.unwrap();
        let now = t(NOW);
        assert_eq!(
            store
                .register_charger(new_charger("CP1", Some("s3cret")), now)
                .await
                .unwrap(),
            Registration::Created
        );
        store
            .register_charger(new_charger("CP2", None), now)
            .await
            .unwrap();
        let dup = store
            .register_charger(new_charger("CP1", None), now)
            .await
            .unwrap_err();
        assert!(matches!(dup, StoreError::Conflict(_)), "{dup}");

        let c1 = store.get_charger(&cp("CP1")).await.unwrap().unwrap();
        assert_eq!(c1.status, ChargerStatus::Registered);
        assert!(c1.has_password);
        assert_eq!(c1.registered_at, Some(now));
        assert_eq!(c1.description.as_deref(), Some("CP1 in garage B"));
        let ids: Vec<String> = store
            .list_chargers()
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.id.to_string())
            .collect();
        assert_eq!(ids, ["CP1", "CP2"]);

        let check = |id: &'static str, pw: &'static str| {
            let store = store.clone();
            async move { store.verify_charger_password(&cp(id), pw).await.unwrap() }
        };
        assert_eq!(check("CP1", "s3cret").await, PasswordCheck::Valid);
        assert_eq!(check("CP1", "wrong").await, PasswordCheck::Invalid);
        assert_eq!(check("CP2", "any").await, PasswordCheck::NoPasswordSet);
        assert_eq!(check("CP9", "any").await, PasswordCheck::UnknownCharger);

        store
            .set_charger_password(&cp("CP1"), Some("n3w".into()))
            .await
            .unwrap();
        assert_eq!(check("CP1", "s3cret").await, PasswordCheck::Invalid);
        assert_eq!(check("CP1", "n3w").await, PasswordCheck::Valid);
        store.set_charger_password(&cp("CP1"), None).await.unwrap();
        assert_eq!(check("CP1", "n3w").await, PasswordCheck::NoPasswordSet);
        let missing = store
            .set_charger_password(&cp("CP9"), None)
            .await
            .unwrap_err();
        assert!(matches!(missing, StoreError::NotFound(_)), "{missing}");

        assert!(store.remove_charger(&cp("CP2")).await.unwrap());
        assert!(!store.remove_charger(&cp("CP2")).await.unwrap());
        assert!(store.get_charger(&cp("CP2")).await.unwrap().is_none());
        store.close().await;
    })
    .await;
}

#[tokio::test]
async fn pending_chargers_are_promoted_by_registration() {
    each_backend(|url| async move {
        let store = Store::open(&url).await.unwrap();
        let now = t(NOW);
        let id = cp("NEW-1");
        assert_eq!(
            store.ensure_pending_charger(&id, now).await.unwrap(),
            ChargerStatus::Pending
        );
        // Asking again changes nothing.
        assert_eq!(
            store.ensure_pending_charger(&id, now).await.unwrap(),
            ChargerStatus::Pending
        );
        let pending = store.get_charger(&id).await.unwrap().unwrap();
        assert_eq!(pending.registered_at, None);
        store.record_boot(&id, boot(), now).await.unwrap();

        let later = t("2026-11-26T13:00:00Z");
        assert_eq!(
            store
                .register_charger(new_charger("NEW-1", Some("pw")), later)
                .await
                .unwrap(),
            Registration::PromotedFromPending
        );
        let c = store.get_charger(&id).await.unwrap().unwrap();
        assert_eq!(c.status, ChargerStatus::Registered);
        assert_eq!(c.registered_at, Some(later));
        assert_eq!(c.vendor.as_deref(), Some("Acme"), "boot data kept");
        assert_eq!(
            store.ensure_pending_charger(&id, later).await.unwrap(),
            ChargerStatus::Registered
        );
        store.close().await;
    })
    .await;
}

#[tokio::test]
async fn boot_heartbeat_firmware_and_status_notifications() {
    each_backend(|url| async move {
        let store = Store::open(&url).await.unwrap();
        let id = cp("CP1");
        store
            .register_charger(new_charger("CP1", None), t(NOW))
            .await
            .unwrap();
        store
            .record_boot(&id, boot(), t("2026-11-26T12:00:01Z"))
            .await
            .unwrap();
        store
            .record_seen(&id, t("2026-11-26T12:05:00Z"))
            .await
            .unwrap();
        // An older time (a late batch) does not move last_seen back, and is not an error.
        store
            .record_seen(&id, t("2026-11-26T12:01:00Z"))
            .await
            .unwrap();
        store
            .record_firmware_status(&id, "Installed", t("2026-11-26T12:06:00Z"))
            .await
            .unwrap();
        store
            .record_diagnostics_status(&id, "Uploaded", t("2026-11-26T12:07:00Z"))
            .await
            .unwrap();
        let c = store.get_charger(&id).await.unwrap().unwrap();
        assert_eq!(c.model.as_deref(), Some("Wallbox 7"));
        assert_eq!(c.serial_number.as_deref(), Some("SN-1"));
        assert_eq!(c.firmware_version.as_deref(), Some("1.2.3"));
        assert_eq!(c.last_boot_at, Some(t("2026-11-26T12:00:01Z")));
        // The diagnostics notification is the latest message.
        assert_eq!(c.last_seen_at, Some(t("2026-11-26T12:07:00Z")));
        assert_eq!(c.firmware_status.as_deref(), Some("Installed"));
        assert_eq!(c.diagnostics_status.as_deref(), Some("Uploaded"));

        let unknown = store.record_seen(&cp("GHOST"), t(NOW)).await.unwrap_err();
        assert!(matches!(unknown, StoreError::NotFound(_)), "{unknown}");
        let unknown = store
            .record_boot(&cp("GHOST"), boot(), t(NOW))
            .await
            .unwrap_err();
        assert!(matches!(unknown, StoreError::NotFound(_)), "{unknown}");

        let report = |connector, status: &str, at: &str| StatusReport {
            connector_id: connector,
            status: status.into(),
            error_code: "NoError".into(),
            info: None,
            vendor_id: None,
            vendor_error_code: None,
            timestamp: Some(t(at)),
        };
        let rx = t("2026-11-26T12:10:00Z");
        for r in [
            report(0, "Available", "2026-11-26T12:00:02Z"),
            report(1, "Available", "2026-11-26T12:00:02Z"),
            report(1, "Charging", "2026-11-26T12:03:00Z"),
            // Replayed late, older than what we have: history only.
            report(1, "Preparing", "2026-11-26T12:02:00Z"),
            report(2, "Faulted", "2026-11-26T12:04:00Z"),
        ] {
            store.record_status(&id, r, rx).await.unwrap();
        }
        let connectors = store.connectors(&id).await.unwrap();
        let states: Vec<(i32, &str)> = connectors
            .iter()
            .map(|c| (c.connector_id, c.status.as_str()))
            .collect();
        assert_eq!(states, [(0, "Available"), (1, "Charging"), (2, "Faulted")]);
        assert_eq!(connectors[1].updated_at, t("2026-11-26T12:03:00Z"));
        assert_eq!(store.all_connectors().await.unwrap(), connectors);

        let history = store.status_history(&id, 10).await.unwrap();
        let seen: Vec<&str> = history.iter().map(|h| h.status.as_str()).collect();
        assert_eq!(
            seen,
            ["Faulted", "Charging", "Preparing", "Available", "Available"]
        );
        assert!(history.iter().all(|h| h.received_at == rx));
        assert_eq!(store.status_history(&id, 2).await.unwrap().len(), 2);

        let no_charger = store
            .record_status(&cp("GHOST"), report(1, "Available", NOW), rx)
            .await
            .unwrap_err();
        assert!(
            matches!(no_charger, StoreError::NotFound(_)),
            "{no_charger}"
        );

        // Removing the charger removes its connectors and history with it.
        assert!(store.remove_charger(&id).await.unwrap());
        assert!(store.connectors(&id).await.unwrap().is_empty());
        assert!(store.status_history(&id, 10).await.unwrap().is_empty());
        store.close().await;
    })
    .await;
}

#[tokio::test]
async fn id_tag_statuses_consider_expiry() {
    each_backend(|url| async move {
        let store = Store::open(&url).await.unwrap();
        let now = t(NOW);
        let rec = |id: &str, status, expiry: Option<&str>| IdTagRecord {
            id_tag: tag(id),
            status,
            expiry_date: expiry.map(t),
            parent_id_tag: None,
        };
        use AuthorizationStatus::*;
        store
            .add_id_tag(rec("GOOD", Accepted, None), now)
            .await
            .unwrap();
        store
            .add_id_tag(rec("FUTURE", Accepted, Some("2027-01-01T00:00:00Z")), now)
            .await
            .unwrap();
        store
            .add_id_tag(rec("PAST", Accepted, Some("2026-11-01T00:00:00Z")), now)
            .await
            .unwrap();
        store
            .add_id_tag(rec("BAD", Blocked, None), now)
            .await
            .unwrap();
        store
            .add_id_tag(rec("BADOLD", Blocked, Some("2026-11-01T00:00:00Z")), now)
            .await
            .unwrap();
        let mut child = rec("CHILD", Accepted, None);
        child.parent_id_tag = Some(tag("GOOD"));
        store.add_id_tag(child, now).await.unwrap();
        let dup = store
            .add_id_tag(rec("GOOD", Blocked, None), now)
            .await
            .unwrap_err();
        assert!(matches!(dup, StoreError::Conflict(_)), "{dup}");

        let status = |id: &'static str| {
            let store = store.clone();
            async move { store.authorize(&tag(id), now).await.unwrap().status }
        };
        assert_eq!(status("GOOD").await, Accepted);
        assert_eq!(status("FUTURE").await, Accepted);
        assert_eq!(status("PAST").await, Expired);
        assert_eq!(status("BAD").await, Blocked);
        assert_eq!(status("BADOLD").await, Blocked);
        assert_eq!(status("NOBODY").await, Invalid);
        let info = store.authorize(&tag("CHILD"), now).await.unwrap();
        assert_eq!(info.parent_id_tag, Some(tag("GOOD")));
        let info = store.authorize(&tag("FUTURE"), now).await.unwrap();
        assert_eq!(info.expiry_date, Some(t("2027-01-01T00:00:00Z")));
        // The same tag expires once time passes its expiry.
        assert_eq!(
            store
                .authorize(&tag("FUTURE"), t("2027-01-01T00:00:00Z"))
                .await
                .unwrap()
                .status,
            Expired
        );

        // put: update an existing tag, create a new one.
        assert!(
            !store
                .put_id_tag(rec("GOOD", Blocked, None), now)
                .await
                .unwrap()
        );
        assert_eq!(status("GOOD").await, Blocked);
        assert!(
            store
                .put_id_tag(rec("NEWTAG", Accepted, None), now)
                .await
                .unwrap()
        );
        assert_eq!(
            store
                .get_id_tag(&tag("NEWTAG"))
                .await
                .unwrap()
                .unwrap()
                .status,
            Accepted
        );
        assert!(store.remove_id_tag(&tag("NEWTAG")).await.unwrap());
        assert!(!store.remove_id_tag(&tag("NEWTAG")).await.unwrap());
        assert_eq!(status("NEWTAG").await, Invalid);
        let tags: Vec<String> = store
            .list_id_tags()
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.id_tag.to_string())
            .collect();
        assert_eq!(tags, ["BAD", "BADOLD", "CHILD", "FUTURE", "GOOD", "PAST"]);
        store.close().await;
    })
    .await;
}

#[tokio::test]
async fn repeated_start_transaction_returns_the_same_id() {
    each_backend(|url| async move {
        let store = Store::open(&url).await.unwrap();
        let now = t(NOW);
        store
            .add_id_tag(
                IdTagRecord {
                    id_tag: tag("TAG1"),
                    status: AuthorizationStatus::Accepted,
                    expiry_date: None,
                    parent_id_tag: None,
                },
                now,
            )
            .await
            .unwrap();
        let first = store
            .start_transaction(start("CP1", 1, "TAG1", 1000, "2026-11-26T08:00:00Z"), now)
            .await
            .unwrap();
        assert!(first.transaction_id.0 > 0);
        assert!(!first.replayed);
        assert_eq!(first.id_tag_info.status, AuthorizationStatus::Accepted);

        // The tag is blocked meanwhile; the replay still answers what the charger was told.
        store
            .put_id_tag(
                IdTagRecord {
                    id_tag: tag("TAG1"),
                    status: AuthorizationStatus::Blocked,
                    expiry_date: None,
                    parent_id_tag: None,
                },
                now,
            )
            .await
            .unwrap();
        let again = store
            .start_transaction(start("CP1", 1, "TAG1", 1000, "2026-11-26T08:00:00Z"), now)
            .await
            .unwrap();
        assert_eq!(again.transaction_id, first.transaction_id);
        assert!(again.replayed);
        assert_eq!(again.id_tag_info.status, AuthorizationStatus::Accepted);

        // Any differing field is a different transaction.
        let other_time = store
            .start_transaction(start("CP1", 1, "TAG1", 1000, "2026-11-26T08:00:01Z"), now)
            .await
            .unwrap();
        let other_meter = store
            .start_transaction(start("CP1", 1, "TAG1", 1001, "2026-11-26T08:00:00Z"), now)
            .await
            .unwrap();
        let other_connector = store
            .start_transaction(start("CP1", 2, "TAG1", 1000, "2026-11-26T08:00:00Z"), now)
            .await
            .unwrap();
        let ids = [
            first.transaction_id,
            other_time.transaction_id,
            other_meter.transaction_id,
            other_connector.transaction_id,
        ];
        let mut unique = ids.to_vec();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), 4, "{ids:?}");
        assert_eq!(other_time.id_tag_info.status, AuthorizationStatus::Blocked);

        // Unknown tags are recorded with a real id and status Invalid (OCA test L12).
        let unknown = store
            .start_transaction(start("CP1", 3, "NOBODY", 0, "2026-11-26T09:00:00Z"), now)
            .await
            .unwrap();
        assert!(unknown.transaction_id.0 > 0);
        assert_eq!(unknown.id_tag_info.status, AuthorizationStatus::Invalid);
        let tx = store
            .get_transaction(unknown.transaction_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(tx.id_tag_status, Some(AuthorizationStatus::Invalid));
        assert_eq!(tx.origin, TransactionOrigin::StartTransaction);
        assert!(tx.is_active());

        let all = store
            .list_transactions(&TransactionFilter::default())
            .await
            .unwrap();
        assert_eq!(all.len(), 5, "replay stored once");
        let bad = store
            .start_transaction(start("CP1", 0, "TAG1", 0, NOW), now)
            .await
            .unwrap_err();
        assert!(matches!(bad, StoreError::Invalid { .. }), "{bad}");
        store.close().await;
    })
    .await;
}

#[tokio::test]
async fn energy_stop_replay_and_transaction_listing() {
    each_backend(|url| async move {
        let store = Store::open(&url).await.unwrap();
        let now = t(NOW);
        let s = store
            .start_transaction(start("CP1", 1, "TAG1", 12_345, "2026-11-26T08:00:00Z"), now)
            .await
            .unwrap();
        let other = store
            .start_transaction(start("CP2", 1, "TAG2", 0, "2026-11-26T08:30:00Z"), now)
            .await
            .unwrap();
        let active = store
            .active_transaction(&cp("CP1"), 1)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(active.id, s.transaction_id);
        let stop = StopTransaction {
            charger_id: cp("CP1"),
            transaction_id: s.transaction_id,
            id_tag: Some(tag("TAG1")),
            meter_stop_wh: 19_845,
            timestamp: t("2026-11-26T09:00:00Z"),
            reason: Some("EVDisconnected".into()),
            transaction_data: vec![
                energy("12345", "2026-11-26T08:00:00Z"),
                energy("19845", "2026-11-26T09:00:00Z"),
            ],
        };
        let out = store.stop_transaction(stop.clone(), now).await.unwrap();
        assert!(out.was_known);
        assert!(!out.already_stopped);
        assert_eq!(out.energy_wh, Some(7_500));
        assert_eq!(
            out.id_tag_info.map(|i| i.status),
            Some(AuthorizationStatus::Invalid),
            "TAG1 was never added"
        );

        // The same stop replayed: nothing changes, no sample doubles.
        let mut replay = stop.clone();
        replay.meter_stop_wh = 99_999; // a confused charger; the first stop wins
        let out = store.stop_transaction(replay, now).await.unwrap();
        assert!(out.already_stopped);
        assert_eq!(out.energy_wh, Some(7_500));

        let tx = store
            .get_transaction(s.transaction_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(tx.energy_wh(), Some(7_500));
        assert_eq!(tx.meter_start_wh, Some(12_345));
        assert_eq!(tx.meter_stop_wh, Some(19_845));
        assert_eq!(tx.stopped_at, Some(t("2026-11-26T09:00:00Z")));
        assert_eq!(tx.stop_reason.as_deref(), Some("EVDisconnected"));
        assert_eq!(tx.connector_id, Some(1));
        assert!(!tx.is_active());
        let samples = store
            .transaction_meter_values(s.transaction_id)
            .await
            .unwrap();
        assert_eq!(samples.len(), 2);
        assert_eq!(
            samples[0].connector_id, 1,
            "transactionData takes the connector"
        );
        assert_eq!(samples[1].value_number, Some(19_845.0));

        // A stop naming another charger's transaction is recorded for its own charger under a
        // fresh id, leaving the other charger's transaction alone; a replay finds it again.
        let mut foreign = stop.clone();
        foreign.charger_id = cp("CP2");
        foreign.meter_stop_wh = 300;
        foreign.transaction_data = vec![energy("300", "2026-11-26T09:30:00Z")];
        let clash = store.stop_transaction(foreign.clone(), now).await.unwrap();
        assert!(!clash.was_known);
        assert_ne!(clash.recorded_as, s.transaction_id);
        let again = store.stop_transaction(foreign, now).await.unwrap();
        assert!(again.was_known && again.already_stopped);
        assert_eq!(again.recorded_as, clash.recorded_as);
        let orphan = store
            .get_transaction(clash.recorded_as)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(orphan.charger_id, cp("CP2"));
        assert_eq!(orphan.reported_id, Some(s.transaction_id));
        assert_eq!(orphan.meter_stop_wh, Some(300));
        assert_eq!(
            store
                .transaction_meter_values(clash.recorded_as)
                .await
                .unwrap()
                .len(),
            1
        );
        let mine = store
            .get_transaction(s.transaction_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(mine.meter_stop_wh, Some(19_845), "untouched");
        assert_eq!(mine.reported_id, None);
        assert_eq!(
            store
                .transaction_meter_values(s.transaction_id)
                .await
                .unwrap()
                .len(),
            2
        );

        let filter = |charger: Option<&str>, active| TransactionFilter {
            charger_id: charger.map(cp),
            active,
            limit: None,
        };
        let ids = |v: Vec<Transaction>| v.into_iter().map(|t| t.id).collect::<Vec<_>>();
        assert_eq!(
            ids(store.list_transactions(&filter(None, None)).await.unwrap()),
            [clash.recorded_as, other.transaction_id, s.transaction_id],
            "newest first"
        );
        assert_eq!(
            ids(store
                .list_transactions(&filter(None, Some(true)))
                .await
                .unwrap()),
            [other.transaction_id]
        );
        assert_eq!(
            ids(store
                .list_transactions(&filter(Some("CP1"), Some(false)))
                .await
                .unwrap()),
            [s.transaction_id]
        );
        assert!(
            store
                .list_transactions(&filter(Some("CP1"), Some(true)))
                .await
                .unwrap()
                .is_empty()
        );
        let limited = TransactionFilter {
            limit: Some(1),
            ..TransactionFilter::default()
        };
        assert_eq!(store.list_transactions(&limited).await.unwrap().len(), 1);
        assert!(
            store
                .active_transaction(&cp("CP1"), 1)
                .await
                .unwrap()
                .is_none()
        );
        store.close().await;
    })
    .await;
}

#[tokio::test]
async fn stop_for_unknown_transaction_is_recorded() {
    each_backend(|url| async move {
        let store = Store::open(&url).await.unwrap();
        let now = t(NOW);
        let stop = StopTransaction {
            charger_id: cp("CP1"),
            transaction_id: TransactionId(4242),
            id_tag: Some(tag("TAG9")),
            meter_stop_wh: 5_000,
            timestamp: t("2026-11-26T07:00:00Z"),
            reason: None,
            transaction_data: vec![energy("4000", "2026-11-26T06:30:00Z")],
        };
        let out = store.stop_transaction(stop.clone(), now).await.unwrap();
        assert!(!out.was_known);
        assert_eq!(
            out.recorded_as,
            TransactionId(4242),
            "stored under the charger's id"
        );
        assert_eq!(out.energy_wh, None, "meterStart unknown");
        let tx = store
            .get_transaction(TransactionId(4242))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(tx.origin, TransactionOrigin::StopTransaction);
        assert_eq!(tx.charger_id, cp("CP1"));
        assert_eq!(tx.meter_stop_wh, Some(5_000));
        assert_eq!(tx.stopped_at, Some(t("2026-11-26T07:00:00Z")));
        assert_eq!(tx.id_tag, Some(tag("TAG9")));
        assert_eq!(tx.connector_id, None);
        assert_eq!(
            store
                .transaction_meter_values(TransactionId(4242))
                .await
                .unwrap()
                .len(),
            1
        );

        // Replayed: still one row, now known and already stopped.
        let out = store.stop_transaction(stop, now).await.unwrap();
        assert!(out.was_known && out.already_stopped);
        assert_eq!(
            store
                .list_transactions(&TransactionFilter::default())
                .await
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            store
                .transaction_meter_values(TransactionId(4242))
                .await
                .unwrap()
                .len(),
            1
        );

        // Ids we issue afterwards never collide with the charger's id.
        let s = store
            .start_transaction(start("CP1", 1, "TAG9", 0, NOW), now)
            .await
            .unwrap();
        assert!(s.transaction_id.0 > 4242, "{}", s.transaction_id);
        store.close().await;
    })
    .await;
}

#[tokio::test]
async fn meter_values_are_read_in_time_order_and_stored_once() {
    each_backend(|url| async move {
        let store = Store::open(&url).await.unwrap();
        let now = t(NOW);
        let s = store
            .start_transaction(start("CP1", 2, "TAG1", 100, "2026-11-26T08:00:00Z"), now)
            .await
            .unwrap();
        let report = |values: Vec<MeterValue>| MeterValuesReport {
            charger_id: cp("CP1"),
            connector_id: 2,
            transaction_id: Some(s.transaction_id),
            meter_values: values,
        };
        // Arrive out of order, in separate messages (an offline queue replayed oddly).
        let late = store
            .record_meter_values(report(vec![energy("300", "2026-11-26T08:20:00Z")]), now)
            .await
            .unwrap();
        assert_eq!(
            late,
            MeterValuesOutcome {
                stored: 1,
                duplicates: 0
            }
        );
        let three_phase = MeterValue {
            timestamp: t("2026-11-26T08:10:00Z"),
            sampled_values: ["L1", "L2", "L3"]
                .into_iter()
                .zip(["15.9", "16.1", "16.0"])
                .map(|(phase, v)| SampledValue {
                    value: v.into(),
                    measurand: Some("Current.Import".into()),
                    phase: Some(phase.into()),
                    unit: Some("A".into()),
                    ..SampledValue::default()
                })
                .chain([SampledValue {
                    value: "200".into(),
                    ..SampledValue::default()
                }])
                .collect(),
        };
        store
            .record_meter_values(
                report(vec![
                    three_phase.clone(),
                    energy("100", "2026-11-26T08:00:00Z"),
                ]),
                now,
            )
            .await
            .unwrap();
        // The whole message again (ack lost, charger resent): nothing new.
        let dup = store
            .record_meter_values(report(vec![three_phase]), now)
            .await
            .unwrap();
        assert_eq!(
            dup,
            MeterValuesOutcome {
                stored: 0,
                duplicates: 4
            }
        );

        let samples = store
            .transaction_meter_values(s.transaction_id)
            .await
            .unwrap();
        let got: Vec<(String, &str, Option<&str>, &str)> = samples
            .iter()
            .map(|x| {
                (
                    x.timestamp.to_string(),
                    x.measurand.as_str(),
                    x.phase.as_deref(),
                    x.value.as_str(),
                )
            })
            .collect();
        let reg = "Energy.Active.Import.Register";
        assert_eq!(
            got,
            [
                ("2026-11-26T08:00:00Z".into(), reg, None, "100"),
                (
                    "2026-11-26T08:10:00Z".into(),
                    "Current.Import",
                    Some("L1"),
                    "15.9"
                ),
                (
                    "2026-11-26T08:10:00Z".into(),
                    "Current.Import",
                    Some("L2"),
                    "16.1"
                ),
                (
                    "2026-11-26T08:10:00Z".into(),
                    "Current.Import",
                    Some("L3"),
                    "16.0"
                ),
                ("2026-11-26T08:10:00Z".into(), reg, None, "200"),
                ("2026-11-26T08:20:00Z".into(), reg, None, "300"),
            ]
        );
        // OCPP defaults filled in, numbers parsed.
        let first = &samples[0];
        assert_eq!(
            (
                first.unit.as_str(),
                first.context.as_str(),
                first.location.as_str(),
                first.format.as_str()
            ),
            ("Wh", "Sample.Periodic", "Outlet", "Raw")
        );
        assert_eq!(samples[2].value_number, Some(16.1));
        assert_eq!(first.transaction_id, Some(s.transaction_id));

        // Signed data is kept verbatim and never read as a number; values without a
        // transaction are stored too.
        store
            .record_meter_values(
                MeterValuesReport {
                    charger_id: cp("CP1"),
                    connector_id: 2,
                    transaction_id: None,
                    meter_values: vec![MeterValue {
                        timestamp: t("2026-11-26T09:00:00Z"),
                        sampled_values: vec![SampledValue {
                            value: "12345".into(),
                            format: Some("SignedData".into()),
                            context: Some("Sample.Clock".into()),
                            ..SampledValue::default()
                        }],
                    }],
                },
                now,
            )
            .await
            .unwrap();
        let window = store
            .connector_meter_values(
                &cp("CP1"),
                2,
                t("2026-11-26T08:10:00Z"),
                t("2026-11-26T10:00:00Z"),
            )
            .await
            .unwrap();
        assert_eq!(window.len(), 6);
        let signed = window.last().unwrap();
        assert_eq!(signed.format, "SignedData");
        assert_eq!(signed.value_number, None);
        assert_eq!(signed.transaction_id, None);
        store.close().await;
    })
    .await;
}

#[tokio::test]
async fn audit_log_is_listed_newest_first() {
    each_backend(|url| async move {
        let store = Store::open(&url).await.unwrap();
        for (i, action) in ["charger.add", "id_tag.add", "operation.Reset"]
            .iter()
            .enumerate()
        {
            let id = store
                .append_audit(NewAuditEntry {
                    at: t(NOW) + jiff::SignedDuration::from_secs(i as i64),
                    actor: "bootstrap".into(),
                    action: (*action).into(),
                    target: Some("CP1".into()),
                    request: serde_json::json!({"n": i, "type": "Soft"}),
                    outcome: "ok".into(),
                })
                .await
                .unwrap();
            assert!(id > 0);
        }
        let log = store.list_audit(10).await.unwrap();
        let actions: Vec<&str> = log.iter().map(|e| e.action.as_str()).collect();
        assert_eq!(actions, ["operation.Reset", "id_tag.add", "charger.add"]);
        assert_eq!(log[0].request, serde_json::json!({"n": 2, "type": "Soft"}));
        assert_eq!(log[0].at, t("2026-11-26T12:00:02Z"));
        assert_eq!(log[0].target.as_deref(), Some("CP1"));
        assert_eq!(store.list_audit(1).await.unwrap().len(), 1);
        store.close().await;
    })
    .await;
}

#[tokio::test]
async fn admin_tokens_bootstrap_configure_verify_revoke() {
    each_backend(|url| async move {
        let store = Store::open(&url).await.unwrap();
        let now = t(NOW);
        let boot = store.ensure_admin_token(None, now).await.unwrap().unwrap();
        // Only the first start creates one.
        assert_eq!(store.ensure_admin_token(None, now).await.unwrap(), None);
        let who = store.verify_admin_token(&boot).await.unwrap().unwrap();
        assert_eq!(who.name, "bootstrap");
        assert!(store.verify_admin_token("guess").await.unwrap().is_none());

        assert_eq!(
            store
                .ensure_admin_token(Some("from-config"), now)
                .await
                .unwrap(),
            None
        );
        assert_eq!(
            store
                .verify_admin_token("from-config")
                .await
                .unwrap()
                .unwrap()
                .name,
            "configured"
        );
        // A changed configured token replaces the old one.
        store
            .ensure_admin_token(Some("changed"), now)
            .await
            .unwrap();
        assert!(
            store
                .verify_admin_token("from-config")
                .await
                .unwrap()
                .is_none()
        );
        assert!(store.verify_admin_token("changed").await.unwrap().is_some());

        let ci = store.create_admin_token("ci", now).await.unwrap();
        assert!(store.verify_admin_token(&ci).await.unwrap().is_some());
        let names: Vec<String> = store
            .list_admin_tokens()
            .await
            .unwrap()
            .into_iter()
            .map(|t| t.name)
            .collect();
        assert_eq!(names, ["bootstrap", "ci", "configured"]);
        assert!(store.revoke_admin_token("ci").await.unwrap());
        assert!(!store.revoke_admin_token("ci").await.unwrap());
        assert!(store.verify_admin_token(&ci).await.unwrap().is_none());
        store.close().await;
    })
    .await;
}

#[tokio::test]
async fn writes_after_close_fail_cleanly() {
    each_backend(|url| async move {
        let store = Store::open(&url).await.unwrap();
        store.close().await;
        let err = store
            .register_charger(new_charger("CP1", None), t(NOW))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::WriterClosed), "{err}");
    })
    .await;
}

#[tokio::test]
async fn large_meter_values_messages_are_stored_whole_and_deduplicated() {
    each_backend(|url| async move {
        let store = Store::open(&url).await.unwrap();
        let now = t(NOW);
        // 3 meter values × 35 samples = 105 rows: more than one INSERT statement's worth.
        let values: Vec<MeterValue> = (0..3)
            .map(|m| MeterValue {
                timestamp: t(NOW) + jiff::SignedDuration::from_mins(m),
                sampled_values: (0..35)
                    .map(|k| SampledValue {
                        value: format!("{}.5", m * 100 + k),
                        measurand: Some(format!("Vendor.Measurand.{k:02}")),
                        ..SampledValue::default()
                    })
                    .collect(),
            })
            .collect();
        let report = MeterValuesReport {
            charger_id: cp("CP1"),
            connector_id: 1,
            transaction_id: None,
            meter_values: values,
        };
        let first = store
            .record_meter_values(report.clone(), now)
            .await
            .unwrap();
        assert_eq!(
            first,
            MeterValuesOutcome {
                stored: 105,
                duplicates: 0
            }
        );
        let again = store.record_meter_values(report, now).await.unwrap();
        assert_eq!(
            again,
            MeterValuesOutcome {
                stored: 0,
                duplicates: 105
            }
        );
        let stored = store
            .connector_meter_values(&cp("CP1"), 1, t(NOW), t("2026-11-27T00:00:00Z"))
            .await
            .unwrap();
        assert_eq!(stored.len(), 105);
        assert_eq!(stored[0].measurand, "Vendor.Measurand.00");
        assert_eq!(stored[104].value_number, Some(234.5));

        // The same sample twice inside one message is stored once.
        let twice = MeterValue {
            timestamp: t("2026-11-26T13:00:00Z"),
            sampled_values: vec![
                SampledValue {
                    value: "1".into(),
                    ..SampledValue::default()
                };
                2
            ],
        };
        let out = store
            .record_meter_values(
                MeterValuesReport {
                    charger_id: cp("CP1"),
                    connector_id: 1,
                    transaction_id: None,
                    meter_values: vec![twice],
                },
                now,
            )
            .await
            .unwrap();
        assert_eq!(
            out,
            MeterValuesOutcome {
                stored: 1,
                duplicates: 1
            }
        );
        store.close().await;
    })
    .await;
}

#[tokio::test]
async fn every_charger_message_moves_last_seen_forward() {
    each_backend(|url| async move {
        let store = Store::open(&url).await.unwrap();
        let id = cp("CP1");
        store
            .register_charger(new_charger("CP1", None), t(NOW))
            .await
            .unwrap();
        let seen = || {
            let (store, id) = (store.clone(), id.clone());
            async move { store.get_charger(&id).await.unwrap().unwrap().last_seen_at }
        };
        assert_eq!(seen().await, None);
        let at = |m: i64| t(NOW) + jiff::SignedDuration::from_mins(m);

        store
            .record_status(
                &id,
                StatusReport {
                    connector_id: 1,
                    status: "Available".into(),
                    error_code: "NoError".into(),
                    info: None,
                    vendor_id: None,
                    vendor_error_code: None,
                    timestamp: None,
                },
                at(1),
            )
            .await
            .unwrap();
        assert_eq!(seen().await, Some(at(1)));
        let s = store
            .start_transaction(start("CP1", 1, "TAG1", 0, NOW), at(2))
            .await
            .unwrap();
        assert_eq!(seen().await, Some(at(2)));
        store
            .record_meter_values(
                MeterValuesReport {
                    charger_id: id.clone(),
                    connector_id: 1,
                    transaction_id: Some(s.transaction_id),
                    meter_values: vec![energy("10", NOW)],
                },
                at(3),
            )
            .await
            .unwrap();
        assert_eq!(seen().await, Some(at(3)));
        store
            .stop_transaction(
                StopTransaction {
                    charger_id: id.clone(),
                    transaction_id: s.transaction_id,
                    id_tag: None,
                    meter_stop_wh: 10,
                    timestamp: at(4),
                    reason: None,
                    transaction_data: vec![],
                },
                at(4),
            )
            .await
            .unwrap();
        assert_eq!(seen().await, Some(at(4)));
        store
            .record_firmware_status(&id, "Idle", at(5))
            .await
            .unwrap();
        assert_eq!(seen().await, Some(at(5)));
        store
            .record_diagnostics_status(&id, "Idle", at(6))
            .await
            .unwrap();
        assert_eq!(seen().await, Some(at(6)));
        // A message recorded late with an older receive time does not move it back.
        store
            .record_meter_values(
                MeterValuesReport {
                    charger_id: id.clone(),
                    connector_id: 1,
                    transaction_id: None,
                    meter_values: vec![energy("11", NOW)],
                },
                at(0),
            )
            .await
            .unwrap();
        assert_eq!(seen().await, Some(at(6)));
        // Messages from a charger that is not stored are still recorded (meter values are
        // accounting data) and touch nothing.
        store
            .record_meter_values(
                MeterValuesReport {
                    charger_id: cp("GHOST"),
                    connector_id: 1,
                    transaction_id: None,
                    meter_values: vec![energy("1", NOW)],
                },
                at(7),
            )
            .await
            .unwrap();
        assert!(store.get_charger(&cp("GHOST")).await.unwrap().is_none());
        store.close().await;
    })
    .await;
}

#[tokio::test]
async fn sqlite_file_is_in_wal_mode() {
    use sqlx::Connection;
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir.path().join("a dir with spaces?#%").join("orderly.db"));
    // The parent directory must exist: the server creates its data dir.
    std::fs::create_dir_all(dir.path().join("a dir with spaces?#%")).unwrap();
    let store = Store::open(&url).await.unwrap();
    store
        .register_charger(new_charger("CP1", None), t(NOW))
        .await
        .unwrap();
    // journal_mode is a property of the file: a fresh connection sees it.
    let mut conn = sqlx::AnyConnection::connect(&url).await.unwrap();
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(mode, "wal");
    conn.close().await.unwrap();
    store.close().await;
}
