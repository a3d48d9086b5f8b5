//! The closed loop's records (migration 0003), on SQLite and (when configured) PostgreSQL.

mod common;

use common::{cp, each_backend, t, tag};
use orderly_store::*;
use serde_json::json;

const NOW: &str = "2026-11-26T12:00:00Z";

fn community(id: &str, rating: f64) -> CommunityRecord {
    CommunityRecord {
        id: id.into(),
        name: Some("Garden Court".into()),
        rating_kva: rating,
        power_factor: 0.9,
        base_load_kw: (0..24).map(f64::from).collect(),
        timezone: "Asia/Shanghai".into(),
        tariff_cny_per_kwh: vec![0.3; 24],
        emergency_price_cny_per_kwh: 1.5,
        max_emergencies: Some(2),
        default_stay_hours: 10.0,
        default_energy_kwh: 10.0,
        community_meter: None,
        created_at: t(NOW),
        updated_at: t(NOW),
    }
}

fn attrs(charger: &str, community: &str) -> ChargerElectrical {
    ChargerElectrical {
        charger_id: cp(charger),
        community_id: community.into(),
        phases: 1,
        voltage_v: 220.0,
        max_current_a: 32.0,
        min_current_a: 6.0,
        rate_unit: "amperes".into(),
    }
}

async fn register(store: &Store, id: &str) {
    store
        .register_charger(
            NewCharger {
                id: cp(id),
                password: None,
                description: None,
            },
            t(NOW),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn communities_and_chargers() {
    each_backend(|url| async move {
        let store = Store::open(&url).await.unwrap();
        assert!(
            store
                .put_community(community("c1", 250.0), t(NOW))
                .await
                .unwrap()
        );
        // Update keeps created_at and replaces the rest.
        let later = t("2026-11-26T13:00:00Z");
        assert!(
            !store
                .put_community(community("c1", 300.0), later)
                .await
                .unwrap()
        );
        let got = store.get_community("c1").await.unwrap().unwrap();
        assert_eq!(got.rating_kva, 300.0);
        assert_eq!(got.base_load_kw.len(), 24);
        assert_eq!(got.base_load_kw[23], 23.0);
        assert_eq!(got.max_emergencies, Some(2));
        assert_eq!(got.created_at, t(NOW));
        assert_eq!(got.updated_at, later);
        assert_eq!(store.list_communities().await.unwrap().len(), 1);

        // Attaching needs both the charger and the community.
        let err = store
            .attach_charger(attrs("CP1", "c1"), t(NOW))
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreError::NotFound(ref m) if m.contains("CP1")),
            "{err}"
        );
        register(&store, "CP1").await;
        let err = store
            .attach_charger(attrs("CP1", "nope"), t(NOW))
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreError::NotFound(ref m) if m.contains("nope")),
            "{err}"
        );
        store
            .attach_charger(attrs("CP1", "c1"), t(NOW))
            .await
            .unwrap();
        let mut three = attrs("CP1", "c1");
        three.phases = 3;
        store.attach_charger(three.clone(), t(NOW)).await.unwrap();
        assert_eq!(
            store.charger_electrical(&cp("CP1")).await.unwrap(),
            Some(three)
        );
        assert_eq!(store.community_chargers("c1").await.unwrap().len(), 1);

        // A community with chargers stays.
        let err = store.remove_community("c1").await.unwrap_err();
        assert!(matches!(err, StoreError::Conflict(_)), "{err}");
        assert!(!store.profile_release_pending(&cp("CP1")).await.unwrap());
        assert!(store.detach_charger(&cp("CP1"), t(NOW)).await.unwrap());
        assert!(!store.detach_charger(&cp("CP1"), t(NOW)).await.unwrap());
        // Detached: its profiles are to be cleared until the charger confirms it...
        assert!(store.profile_release_pending(&cp("CP1")).await.unwrap());
        assert!(store.finish_profile_release(&cp("CP1")).await.unwrap());
        assert!(!store.profile_release_pending(&cp("CP1")).await.unwrap());
        assert!(!store.finish_profile_release(&cp("CP1")).await.unwrap());
        // ...or until it joins a community again, whose controller sends its own.
        store
            .attach_charger(attrs("CP1", "c1"), t(NOW))
            .await
            .unwrap();
        assert!(store.detach_charger(&cp("CP1"), t(NOW)).await.unwrap());
        assert!(store.profile_release_pending(&cp("CP1")).await.unwrap());
        store
            .attach_charger(attrs("CP1", "c1"), t(NOW))
            .await
            .unwrap();
        assert!(!store.profile_release_pending(&cp("CP1")).await.unwrap());
        assert!(store.detach_charger(&cp("CP1"), t(NOW)).await.unwrap());
        assert!(store.remove_community("c1").await.unwrap());
        assert!(!store.remove_community("c1").await.unwrap());
        assert!(store.get_community("c1").await.unwrap().is_none());

        // Removing a charger removes its electrical facts.
        store
            .put_community(community("c2", 100.0), t(NOW))
            .await
            .unwrap();
        store
            .attach_charger(attrs("CP1", "c2"), t(NOW))
            .await
            .unwrap();
        assert!(store.remove_charger(&cp("CP1")).await.unwrap());
        assert!(store.community_chargers("c2").await.unwrap().is_empty());
        store.close().await;
    })
    .await;
}

#[tokio::test]
async fn wishes_defaults_and_history() {
    each_backend(|url| async move {
        let store = Store::open(&url).await.unwrap();
        let wish = WishRecord {
            transaction_id: TransactionId(7),
            departure: Some(t("2026-11-27T07:30:00Z")),
            stay_hours: None,
            energy_kwh: Some(12.5),
            target_soc_percent: None,
            battery_kwh: None,
            emergency: true,
            updated_at: t(NOW),
        };
        store.put_wish(wish.clone()).await.unwrap();
        assert_eq!(
            store.get_wish(TransactionId(7)).await.unwrap(),
            Some(wish.clone())
        );
        let replaced = WishRecord {
            emergency: false,
            energy_kwh: None,
            target_soc_percent: Some(80.0),
            battery_kwh: Some(60.0),
            ..wish
        };
        store.put_wish(replaced.clone()).await.unwrap();
        assert_eq!(
            store.get_wish(TransactionId(7)).await.unwrap(),
            Some(replaced)
        );
        assert!(store.get_wish(TransactionId(8)).await.unwrap().is_none());

        let defaults = WishDefaults {
            id_tag: tag("TAG1"),
            departure_local: Some("07:30".into()),
            stay_hours: None,
            energy_kwh: Some(9.0),
            updated_at: t(NOW),
        };
        assert!(store.put_wish_defaults(defaults.clone()).await.unwrap());
        assert!(!store.put_wish_defaults(defaults.clone()).await.unwrap());
        assert_eq!(
            store.get_wish_defaults(&tag("TAG1")).await.unwrap(),
            Some(defaults)
        );

        // History: only finished sessions of that tag, newest first.
        register(&store, "CP1").await;
        for (i, (start, stop, wh)) in [
            ("2026-11-20T18:00:00Z", "2026-11-21T07:00:00Z", 10_000),
            ("2026-11-21T18:00:00Z", "2026-11-22T07:00:00Z", 12_000),
            ("2026-11-22T18:00:00Z", "2026-11-23T06:00:00Z", 8_000),
        ]
        .into_iter()
        .enumerate()
        {
            let started = store
                .start_transaction(
                    StartTransaction {
                        charger_id: cp("CP1"),
                        connector_id: 1,
                        id_tag: tag("TAG1"),
                        meter_start_wh: 1000 * i as i64,
                        timestamp: t(start),
                        reservation_id: None,
                    },
                    t(start),
                )
                .await
                .unwrap();
            store
                .stop_transaction(
                    StopTransaction {
                        charger_id: cp("CP1"),
                        transaction_id: started.transaction_id,
                        id_tag: None,
                        meter_stop_wh: 1000 * i as i64 + wh,
                        timestamp: t(stop),
                        reason: None,
                        transaction_data: vec![],
                    },
                    t(stop),
                )
                .await
                .unwrap();
        }
        // A running one does not count.
        store
            .start_transaction(
                StartTransaction {
                    charger_id: cp("CP1"),
                    connector_id: 1,
                    id_tag: tag("TAG1"),
                    meter_start_wh: 50_000,
                    timestamp: t(NOW),
                    reservation_id: None,
                },
                t(NOW),
            )
            .await
            .unwrap();
        let history = store.finished_sessions(&tag("TAG1"), 10).await.unwrap();
        assert_eq!(history.len(), 3);
        assert_eq!(history[0].energy_wh, 8_000);
        assert_eq!(history[0].started_at, t("2026-11-22T18:00:00Z"));
        assert_eq!(
            store
                .finished_sessions(&tag("TAG1"), 2)
                .await
                .unwrap()
                .len(),
            2
        );
        assert!(
            store
                .finished_sessions(&tag("OTHER"), 10)
                .await
                .unwrap()
                .is_empty()
        );
        store.close().await;
    })
    .await;
}

#[tokio::test]
async fn grid_commands_and_compliance() {
    each_backend(|url| async move {
        let store = Store::open(&url).await.unwrap();
        let command = |key: Option<&str>| NewGridCommand {
            community_id: "c1".into(),
            kind: GridCommandKind::Limit,
            kw: 50.0,
            start: t("2026-11-26T18:00:00Z"),
            end: t("2026-11-26T20:00:00Z"),
            received: t(NOW),
            source: json!({"source": "api", "actor": "bootstrap"}),
            source_key: key.map(str::to_owned),
        };
        let err = store.insert_grid_command(command(None)).await.unwrap_err();
        assert!(
            matches!(err, StoreError::NotFound(ref m) if m.contains("c1")),
            "{err}"
        );
        store
            .put_community(community("c1", 250.0), t(NOW))
            .await
            .unwrap();
        let a = store.insert_grid_command(command(None)).await.unwrap();
        let b = store
            .insert_grid_command(command(Some("vtn/ev1")))
            .await
            .unwrap();
        assert_ne!(a, b);
        // The same source key updates the record instead of adding one.
        let mut again = command(Some("vtn/ev1"));
        again.kw = 40.0;
        again.kind = GridCommandKind::Reduce;
        assert_eq!(store.insert_grid_command(again).await.unwrap(), b);
        let got = store.get_grid_command(b).await.unwrap().unwrap();
        assert_eq!((got.kind, got.kw), (GridCommandKind::Reduce, 40.0));
        assert_eq!(
            store
                .get_grid_command_by_key("vtn/ev1")
                .await
                .unwrap()
                .unwrap()
                .id,
            b
        );
        assert_eq!(store.list_grid_commands("c1").await.unwrap().len(), 2);

        assert!(store.cancel_grid_command(a, t(NOW)).await.unwrap());
        assert!(!store.cancel_grid_command(a, t(NOW)).await.unwrap());
        let err = store.cancel_grid_command(999, t(NOW)).await.unwrap_err();
        assert!(matches!(err, StoreError::NotFound(_)), "{err}");
        let open = store.open_grid_commands("c1", t(NOW)).await.unwrap();
        assert_eq!(open.iter().map(|c| c.id).collect::<Vec<_>>(), vec![b]);
        assert!(
            store
                .open_grid_commands("c1", t("2026-11-26T20:00:00Z"))
                .await
                .unwrap()
                .is_empty()
        );

        let report = json!({"command": b, "complied": null, "complete": false});
        store
            .set_grid_command_report(b, report.clone(), t(NOW))
            .await
            .unwrap();
        let got = store.get_grid_command(b).await.unwrap().unwrap();
        assert_eq!(got.report, Some(report));
        assert_eq!(got.report_at, Some(t(NOW)));
        assert!(got.cancelled_at.is_none());
        assert_eq!(
            store
                .get_grid_command(a)
                .await
                .unwrap()
                .unwrap()
                .cancelled_at,
            Some(t(NOW))
        );

        let e1 = store
            .append_compliance_event(&cp("CP1"), Some("c1"), false, t(NOW), "drew 9 kW over 7 kW")
            .await
            .unwrap();
        let e2 = store
            .append_compliance_event(
                &cp("CP1"),
                Some("c1"),
                true,
                t("2026-11-26T12:05:00Z"),
                "back",
            )
            .await
            .unwrap();
        assert!(e2 > e1);
        let events = store
            .list_compliance_events(Some(&cp("CP1")), 10)
            .await
            .unwrap();
        assert_eq!(events.len(), 2);
        assert!(events[0].compliant && !events[1].compliant);
        assert_eq!(
            store.list_compliance_events(None, 1).await.unwrap().len(),
            1
        );

        // Removing the community removes its commands.
        assert!(store.remove_community("c1").await.unwrap());
        assert!(store.get_grid_command(b).await.unwrap().is_none());
        store.close().await;
    })
    .await;
}

#[tokio::test]
async fn completed_transactions_of_a_community_in_a_range() {
    each_backend(|url| async move {
        let store = Store::open(&url).await.unwrap();
        store
            .put_community(community("c1", 250.0), t(NOW))
            .await
            .unwrap();
        store
            .put_community(community("c2", 250.0), t(NOW))
            .await
            .unwrap();
        for (id, c) in [("A1", "c1"), ("A2", "c1"), ("B1", "c2")] {
            register(&store, id).await;
            store.attach_charger(attrs(id, c), t(NOW)).await.unwrap();
        }
        let row = |charger: &str, start: &str, stop: &str, m0: i64, m1: i64| HistoricTransaction {
            charger_id: cp(charger),
            connector_id: 1,
            id_tag: tag("TAG1"),
            meter_start_wh: m0,
            meter_stop_wh: m1,
            started_at: t(start),
            stopped_at: t(stop),
        };
        let rows = vec![
            row(
                "A1",
                "2026-11-20T10:00:00Z",
                "2026-11-20T14:00:00Z",
                1_000,
                13_500,
            ),
            row(
                "A2",
                "2026-11-21T10:00:00Z",
                "2026-11-21T12:00:00Z",
                0,
                5_000,
            ),
            // Implausible rows are recorded as given; the reader judges them.
            row(
                "A2",
                "2026-11-22T10:00:00Z",
                "2026-11-22T09:00:00Z",
                5_000,
                4_000,
            ),
            // Another community's charger, and one before the range.
            row(
                "B1",
                "2026-11-21T10:00:00Z",
                "2026-11-21T12:00:00Z",
                0,
                5_000,
            ),
            row(
                "A1",
                "2026-11-01T10:00:00Z",
                "2026-11-01T12:00:00Z",
                0,
                5_000,
            ),
        ];
        assert_eq!(
            store
                .import_transactions(rows.clone(), t(NOW))
                .await
                .unwrap(),
            5
        );
        // Importing again adds nothing.
        assert_eq!(store.import_transactions(rows, t(NOW)).await.unwrap(), 0);
        let bad = vec![HistoricTransaction {
            connector_id: 0,
            ..row("A1", "2026-11-23T10:00:00Z", "2026-11-23T12:00:00Z", 0, 1)
        }];
        assert!(matches!(
            store.import_transactions(bad, t(NOW)).await,
            Err(StoreError::Invalid { .. })
        ));
        // A running transaction (no stop yet) of the community is not completed.
        store
            .start_transaction(
                StartTransaction {
                    charger_id: cp("A1"),
                    connector_id: 1,
                    id_tag: tag("TAG1"),
                    meter_start_wh: 20_000,
                    timestamp: t("2026-11-25T10:00:00Z"),
                    reservation_id: None,
                },
                t(NOW),
            )
            .await
            .unwrap();
        let got = store
            .completed_transactions("c1", t("2026-11-10T00:00:00Z"), t(NOW))
            .await
            .unwrap();
        assert_eq!(got.len(), 3, "{got:?}");
        assert_eq!(got[0].charger_id, cp("A1"));
        assert_eq!(got[0].connector_id, Some(1));
        assert_eq!(got[0].started_at, t("2026-11-20T10:00:00Z"));
        assert_eq!(got[0].stopped_at, t("2026-11-20T14:00:00Z"));
        assert!((got[0].energy_kwh - 12.5).abs() < 1e-9);
        assert_eq!(got[1].charger_id, cp("A2"));
        assert!((got[2].energy_kwh + 1.0).abs() < 1e-9);
        assert!(got[2].stopped_at < got[2].started_at);
        // The range's end is exclusive, its start inclusive.
        let day = store
            .completed_transactions("c1", t("2026-11-21T10:00:00Z"), t("2026-11-22T10:00:00Z"))
            .await
            .unwrap();
        assert_eq!(day.len(), 1);
        assert_eq!(day[0].charger_id, cp("A2"));
        assert_eq!(
            store
                .completed_transactions("c2", t("2026-11-10T00:00:00Z"), t(NOW))
                .await
                .unwrap()
                .len(),
            1
        );
        store.close().await;
    })
    .await;
}
