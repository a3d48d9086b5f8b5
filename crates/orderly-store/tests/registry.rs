//! Users, sessions and the registry (migration 0004), on SQLite and (when configured) PostgreSQL.

mod common;

use common::{cp, each_backend, t, tag};
use jiff::SignedDuration;
use orderly_store::*;

const NOW: &str = "2026-11-26T12:00:00Z";

fn community(id: &str) -> CommunityRecord {
    CommunityRecord {
        id: id.into(),
        name: Some(format!("Community {id}")),
        rating_kva: 400.0,
        power_factor: 0.9,
        base_load_kw: vec![50.0; 24],
        timezone: "Asia/Shanghai".into(),
        tariff_cny_per_kwh: vec![0.5; 24],
        emergency_price_cny_per_kwh: 1.5,
        max_emergencies: None,
        default_stay_hours: 10.0,
        default_energy_kwh: 10.0,
        community_meter: None,
        created_at: t(NOW),
        updated_at: t(NOW),
    }
}

fn user(id: &str, role: Role) -> NewUser {
    NewUser {
        id: id.into(),
        name: format!("User {id}"),
        password: format!("{id}-password"),
        role,
        scopes: vec![],
        id_tags: vec![],
    }
}

fn facts(community: &str, owner: Option<&str>) -> ChargerFacts {
    ChargerFacts {
        community_id: Some(community.into()),
        bay_id: None,
        kind: ChargerKind::SelfUse,
        owner: owner.map(Into::into),
        operator: Some("GridCo".into()),
        model: Some("Wallbox 7".into()),
        rated_power_kw: Some(7.0),
        phases: Some(1),
        connectors: vec![RegistryConnector {
            connector_id: 1,
            standard: "GB/T".into(),
            max_power_kw: Some(7.0),
        }],
        maintainer: Some("GridCo Service".into()),
    }
}

#[tokio::test]
async fn users_sessions_and_scopes() {
    each_backend(|url| async move {
        let store = Store::open(&url).await.unwrap();
        let mut pm = user("pm", Role::PropertyManager);
        pm.scopes = vec![Scope::District("D1".into()), Scope::Community("A".into())];
        let created = store.create_user(pm.clone(), t(NOW)).await.unwrap();
        assert_eq!(created.role, Role::PropertyManager);
        assert_eq!(created.scopes.len(), 2);
        assert!(matches!(
            store.create_user(pm, t(NOW)).await,
            Err(StoreError::Conflict(_))
        ));
        let mut short = user("x", Role::Resident);
        short.password = "short".into();
        assert!(matches!(
            store.create_user(short, t(NOW)).await,
            Err(StoreError::Invalid {
                field: "password",
                ..
            })
        ));
        let mut res = user("res", Role::Resident);
        res.id_tags = vec!["TAG1".into()];
        store.create_user(res, t(NOW)).await.unwrap();
        let mut thief = user("thief", Role::Resident);
        thief.id_tags = vec!["TAG1".into()];
        assert!(matches!(
            store.create_user(thief, t(NOW)).await,
            Err(StoreError::Conflict(_))
        ));
        assert!(
            store.get_user("thief").await.unwrap().is_none(),
            "nothing written"
        );
        assert_eq!(
            store.id_tag_owner("TAG1").await.unwrap().as_deref(),
            Some("res")
        );

        assert!(
            store
                .verify_user_password("pm", "wrong-password")
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            store
                .verify_user_password("nobody", "pm-password")
                .await
                .unwrap()
                .is_none()
        );
        let who = store
            .verify_user_password("pm", "pm-password")
            .await
            .unwrap();
        assert_eq!(who.unwrap().id, "pm");

        let session = store
            .open_session("pm", SignedDuration::from_hours(1), t(NOW))
            .await
            .unwrap();
        let at = |s: &str| t(s);
        assert_eq!(
            store
                .session_user(&session.token, at("2026-11-26T12:30:00Z"))
                .await
                .unwrap()
                .map(|u| u.id),
            Some("pm".into())
        );
        assert!(
            store
                .session_user(&session.token, at("2026-11-26T13:00:00Z"))
                .await
                .unwrap()
                .is_none(),
            "expired"
        );
        // A new password ends open sessions.
        let s2 = store
            .open_session("pm", SignedDuration::from_hours(1), t(NOW))
            .await
            .unwrap();
        store
            .update_user(
                "pm",
                UserUpdate {
                    password: Some("a new password".into()),
                    ..Default::default()
                },
                t(NOW),
            )
            .await
            .unwrap();
        assert!(
            store
                .session_user(&s2.token, t(NOW))
                .await
                .unwrap()
                .is_none()
        );
        let s3 = store
            .open_session("pm", SignedDuration::from_hours(1), t(NOW))
            .await
            .unwrap();
        assert!(store.close_session(&s3.token).await.unwrap());
        assert!(
            store
                .session_user(&s3.token, t(NOW))
                .await
                .unwrap()
                .is_none()
        );
        assert!(store.delete_user("res").await.unwrap());
        assert!(store.id_tag_owner("TAG1").await.unwrap().is_none());
        store.close().await;
    })
    .await;
}

#[tokio::test]
async fn registry_lifecycle_transfers_and_events() {
    each_backend(|url| async move {
        let store = Store::open(&url).await.unwrap();
        store.put_community(community("A"), t(NOW)).await.unwrap();
        assert!(
            store
                .put_district("D1", "Haidian", Some("Beijing"), t(NOW))
                .await
                .unwrap()
        );
        store
            .set_community_facts(
                "A",
                CommunityFacts {
                    address: Some("1 Garden Road".into()),
                    district_id: Some("D1".into()),
                    property_manager: Some("Acme PM".into()),
                },
                t(NOW),
            )
            .await
            .unwrap();
        assert!(matches!(
            store
                .set_community_facts(
                    "A",
                    CommunityFacts {
                        district_id: Some("NOPE".into()),
                        ..Default::default()
                    },
                    t(NOW)
                )
                .await,
            Err(StoreError::Invalid {
                field: "district_id",
                ..
            })
        ));
        assert_eq!(
            store
                .communities_in_districts(&["D1".into()])
                .await
                .unwrap(),
            vec!["A".to_string()]
        );
        store
            .create_user(user("alice", Role::ChargerOwner), t(NOW))
            .await
            .unwrap();
        store
            .create_user(user("bob", Role::ChargerOwner), t(NOW))
            .await
            .unwrap();

        let bay = store
            .create_bay(
                "A",
                BayInput {
                    number: "B-001".into(),
                    tenure: Tenure::Owned,
                    lease_end: None,
                    holder: Some("alice".into()),
                    ev_only: true,
                    charger: BayCharger::Built,
                },
                t(NOW),
            )
            .await
            .unwrap();
        let leased_without_end = BayInput {
            number: "B-002".into(),
            tenure: Tenure::Leased,
            lease_end: None,
            holder: None,
            ev_only: false,
            charger: BayCharger::Reserved,
        };
        assert!(matches!(
            store
                .create_bay("A", leased_without_end.clone(), t(NOW))
                .await,
            Err(StoreError::Invalid {
                field: "lease_end",
                ..
            })
        ));
        store
            .create_bay(
                "A",
                BayInput {
                    lease_end: Some(t("2030-01-01T00:00:00Z")),
                    ..leased_without_end
                },
                t(NOW),
            )
            .await
            .unwrap();
        let figures = store.construction_figures("A").await.unwrap().unwrap();
        assert_eq!(
            (
                figures.bays,
                figures.bays_with_chargers,
                figures.reserved_bays,
                figures.ev_only_bays
            ),
            (2, 1, 1, 1)
        );

        store
            .register_charger(
                NewCharger {
                    id: cp("CP1"),
                    password: Some("charger secret".into()),
                    description: None,
                },
                t(NOW),
            )
            .await
            .unwrap();
        let mut f = facts("A", Some("alice"));
        f.bay_id = Some(bay.id);
        let reg = store
            .put_charger_facts("CP1", f.clone(), t(NOW))
            .await
            .unwrap();
        assert_eq!(reg.lifecycle, Lifecycle::Planned);
        assert!(matches!(
            store.put_charger_facts("NOPE", f.clone(), t(NOW)).await,
            Err(StoreError::NotFound(_))
        ));
        // The owner changes only through a transfer.
        assert!(matches!(
            store
                .put_charger_facts("CP1", facts("A", Some("bob")), t(NOW))
                .await,
            Err(StoreError::Invalid { field: "owner", .. })
        ));
        assert!(matches!(
            store
                .set_lifecycle("CP1", Lifecycle::Active, "op", t(NOW))
                .await,
            Err(StoreError::Conflict(_))
        ));
        for to in [Lifecycle::Installed, Lifecycle::Active] {
            store.set_lifecycle("CP1", to, "op", t(NOW)).await.unwrap();
        }
        assert!(matches!(
            store
                .set_lifecycle("CP1", Lifecycle::Transferred, "op", t(NOW))
                .await,
            Err(StoreError::Invalid { .. })
        ));

        let transfer = store
            .request_transfer("CP1", "bob", "alice", t(NOW))
            .await
            .unwrap();
        assert_eq!(transfer.state, TransferState::Pending);
        assert_eq!(
            store
                .charger_registration("CP1")
                .await
                .unwrap()
                .unwrap()
                .facts
                .owner
                .as_deref(),
            Some("alice"),
            "no change before acceptance"
        );
        assert!(matches!(
            store.request_transfer("CP1", "bob", "alice", t(NOW)).await,
            Err(StoreError::Conflict(_))
        ));
        let accepted = store
            .decide_transfer(transfer.id, TransferDecision::Accept, "bob", t(NOW))
            .await
            .unwrap();
        assert_eq!(accepted.state, TransferState::Accepted);
        let reg = store.charger_registration("CP1").await.unwrap().unwrap();
        assert_eq!(reg.facts.owner.as_deref(), Some("bob"));
        assert_eq!(reg.lifecycle, Lifecycle::Transferred);
        assert!(matches!(
            store
                .decide_transfer(transfer.id, TransferDecision::Decline, "bob", t(NOW))
                .await,
            Err(StoreError::Conflict(_))
        ));

        // No decommissioning while a transaction is live.
        store
            .put_id_tag(
                IdTagRecord {
                    id_tag: tag("T1"),
                    status: AuthorizationStatus::Accepted,
                    expiry_date: None,
                    parent_id_tag: None,
                },
                t(NOW),
            )
            .await
            .unwrap();
        let started = store
            .start_transaction(
                StartTransaction {
                    charger_id: cp("CP1"),
                    connector_id: 1,
                    id_tag: tag("T1"),
                    meter_start_wh: 0,
                    timestamp: t(NOW),
                    reservation_id: None,
                },
                t(NOW),
            )
            .await
            .unwrap();
        let before = store.registry_events(0, 1000).await.unwrap().len();
        assert!(matches!(
            store
                .set_lifecycle("CP1", Lifecycle::Decommissioned, "op", t(NOW))
                .await,
            Err(StoreError::Conflict(_))
        ));
        assert_eq!(store.registry_events(0, 1000).await.unwrap().len(), before);
        assert_eq!(
            store
                .verify_charger_password(&cp("CP1"), "charger secret")
                .await
                .unwrap(),
            PasswordCheck::Valid
        );
        store
            .stop_transaction(
                StopTransaction {
                    charger_id: cp("CP1"),
                    transaction_id: started.transaction_id,
                    id_tag: None,
                    meter_stop_wh: 1000,
                    timestamp: t("2026-11-26T13:00:00Z"),
                    reason: None,
                    transaction_data: vec![],
                },
                t(NOW),
            )
            .await
            .unwrap();
        let gone = store
            .set_lifecycle("CP1", Lifecycle::Decommissioned, "op", t(NOW))
            .await
            .unwrap();
        assert_eq!(gone.lifecycle, Lifecycle::Decommissioned);
        assert_eq!(
            store
                .verify_charger_password(&cp("CP1"), "charger secret")
                .await
                .unwrap(),
            PasswordCheck::Invalid
        );
        assert!(matches!(
            store
                .set_lifecycle("CP1", Lifecycle::Active, "op", t(NOW))
                .await,
            Err(StoreError::Conflict(_))
        ));

        let events = store.registry_events(0, 1000).await.unwrap();
        let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(
            kinds,
            [
                "district.created",
                "community.updated",
                "bay.created",
                "bay.created",
                "charger.registered",
                "charger.lifecycle",
                "charger.lifecycle",
                "charger.transfer_requested",
                "charger.transferred",
                "charger.lifecycle",
            ]
        );
        assert!(events.windows(2).all(|w| w[0].id < w[1].id));
        let after = store.registry_events(events[7].id, 1000).await.unwrap();
        assert_eq!(after.len(), 2);
        assert_eq!(events.last().unwrap().payload["to"], "decommissioned");
        store.close().await;
    })
    .await;
}

#[test]
fn lifecycle_rules() {
    use Lifecycle::*;
    assert!(Planned.may_become(Installed));
    assert!(!Planned.may_become(Active));
    assert!(Active.may_become(Suspended) && Suspended.may_become(Active));
    assert!(!Active.may_become(Transferred), "only through a transfer");
    assert!(Transferred.may_become(Active));
    assert!(Planned.may_become(Decommissioned));
    for to in Lifecycle::ALL {
        assert!(!Decommissioned.may_become(*to));
    }
}
