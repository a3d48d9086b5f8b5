//! `orderly seed`: fills an empty database with a realistic district for demonstrations and
//! manual testing: two districts, three communities with transformer data and registry facts,
//! parking bays (owned, leased, public; with chargers built, reserved or none) and each
//! community's parking rule (clause 十二), chargers with registry facts, lifecycle and insurance
//! (some ending soon, some missing, so the alerts show), private chargers shared with neighbours
//! on weekday windows (clause 七), residents with id tags, and one user of every other role.
//!
//! Every password is random and printed once (only argon2 hashes are stored).

use crate::cli::StorageArgs;
use crate::config::Config;
use anyhow::Context;
use clap::Args;
use jiff::{SignedDuration, Timestamp};
use orderly_core::{ChargePointId, IdTag};
use orderly_store::{
    AuthorizationStatus, BayCharger, BayInput, ChargerElectrical, ChargerFacts, ChargerKind,
    CommunityFacts, CommunityRecord, IdTagRecord, Lifecycle, NewCharger, NewPolicy, NewUser,
    PolicyKind, RegistryConnector, Role, Scope, Store, Tenure, Terms,
};
use rand::Rng;
use rand::distr::Alphanumeric;
use std::io::Write;

#[derive(Debug, Args)]
pub struct SeedArgs {
    #[command(flatten)]
    pub storage: StorageArgs,
}

fn secret() -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(16)
        .map(char::from)
        .collect()
}

/// A residential evening-peak base load (kW) by local hour, scaled to the transformer.
fn base_load(peak_kw: f64) -> Vec<f64> {
    const SHAPE: [f64; 24] = [
        0.35, 0.30, 0.28, 0.27, 0.27, 0.30, 0.40, 0.55, 0.55, 0.50, 0.48, 0.52, 0.55, 0.50, 0.48,
        0.50, 0.58, 0.72, 0.90, 1.00, 0.98, 0.85, 0.65, 0.45,
    ];
    SHAPE
        .iter()
        .map(|s| (s * peak_kw * 10.0).round() / 10.0)
        .collect()
}

/// Beijing residential EV time-of-use prices (CNY/kWh) by local hour: valley 23:00–07:00,
/// peak 10:00–15:00 and 18:00–21:00, flat otherwise.
fn tariff() -> Vec<f64> {
    (0..24)
        .map(|h| match h {
            23 | 0..=6 => 0.3,
            10..=14 | 18..=20 => 1.0,
            _ => 0.6,
        })
        .collect()
}

struct CommunityPlan {
    id: &'static str,
    name: &'static str,
    address: &'static str,
    district: &'static str,
    manager: &'static str,
    rating_kva: f64,
    bays: usize,
}

const COMMUNITIES: [CommunityPlan; 3] = [
    CommunityPlan {
        id: "garden-court",
        name: "Garden Court",
        address: "18 Zhongguancun South Street, Haidian, Beijing",
        district: "haidian",
        manager: "Greenleaf Property Services",
        rating_kva: 630.0,
        bays: 12,
    },
    CommunityPlan {
        id: "river-view",
        name: "River View",
        address: "7 Xueyuan Road, Haidian, Beijing",
        district: "haidian",
        manager: "Greenleaf Property Services",
        rating_kva: 400.0,
        bays: 10,
    },
    CommunityPlan {
        id: "sunrise",
        name: "Sunrise Gardens",
        address: "66 Chaoyang North Road, Chaoyang, Beijing",
        district: "chaoyang",
        manager: "Capital Estate Management",
        rating_kva: 500.0,
        bays: 10,
    },
];

/// Run `orderly seed`: print every created user and charger with its password.
pub async fn run(args: SeedArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let config = Config::load(&args.storage.overrides())?;
    let store = crate::open_store(&config).await?;
    let result = seed(&store, out).await;
    store.close().await;
    result
}

struct Seeded {
    now: Timestamp,
    users: Vec<(String, Role, String)>,
    chargers: Vec<(String, String)>,
}

async fn user(
    store: &Store,
    seeded: &mut Seeded,
    id: &str,
    name: &str,
    role: Role,
    scopes: Vec<Scope>,
    id_tags: Vec<String>,
) -> anyhow::Result<()> {
    let now = seeded.now;
    let password = secret();
    store
        .create_user(
            NewUser {
                id: id.into(),
                name: name.into(),
                password: password.clone(),
                role,
                scopes,
                id_tags,
            },
            now,
        )
        .await
        .with_context(|| format!("creating user {id} (is the database already seeded?)"))?;
    seeded.users.push((id.into(), role, password));
    Ok(())
}

/// Clauses 十 and 十一: the manufacturer's product liability for two years from installation a
/// year ago, and the owner's (or operator's) charging-safety cover for a year. To show the
/// alerts: every fifth charger's safety cover ends in 20 days, every seventh has none.
async fn insure(
    store: &Store,
    charger: &str,
    owner: Option<&str>,
    b: usize,
    now: Timestamp,
) -> anyhow::Result<()> {
    let days = |d: i64| SignedDuration::from_hours(24 * d);
    let installed = now.checked_sub(days(365))?;
    store
        .add_policy(
            charger,
            NewPolicy {
                kind: PolicyKind::ProductLiability,
                insurer: "PICC Property and Casualty".into(),
                number: format!("PL-{charger}"),
                holder: "GridCo Equipment".into(),
                coverage_cny: 1_000_000.0,
                start: installed,
                end: installed.checked_add(days(730))?,
            },
            now,
        )
        .await?;
    if b % 7 == 3 {
        return Ok(());
    }
    let (start, end) = if b.is_multiple_of(5) {
        (now.checked_sub(days(345))?, now.checked_add(days(20))?)
    } else {
        (now.checked_sub(days(30))?, now.checked_add(days(335))?)
    };
    store
        .add_policy(
            charger,
            NewPolicy {
                kind: PolicyKind::ChargingSafety,
                insurer: "Ping An Property and Casualty".into(),
                number: format!("CS-{charger}"),
                holder: owner.unwrap_or("GridCo Charging").into(),
                coverage_cny: 500_000.0,
                start,
                end,
            },
            now,
        )
        .await?;
    Ok(())
}

/// Clause 七: the owner shares the charger on working days while away, 09:00 to 17:00 Beijing
/// time, for the next week, at 1.20 CNY/kWh, 80 % to the owner.
async fn share(store: &Store, charger: &str, now: Timestamp) -> anyhow::Result<()> {
    store
        .put_sharing_agreement(
            charger,
            Terms {
                price_per_kwh_cny: 1.2,
                price_per_hour_cny: None,
                owner_share_percent: 80.0,
                operator: "GridCo Charging".into(),
                owner_priority: true,
                no_show_grace_min: 30,
                no_show_fee_fen: 500,
                cancel_notice_min: 120,
                late_cancel_fee_fen: 300,
            },
            now,
        )
        .await?;
    let tz = jiff::tz::TimeZone::get("Asia/Shanghai")?;
    let today = now.to_zoned_datetime(tz.clone()).date();
    for d in 1..=7 {
        let day = today.checked_add(jiff::Span::new().days(d))?;
        if matches!(
            day.weekday(),
            jiff::civil::Weekday::Saturday | jiff::civil::Weekday::Sunday
        ) {
            continue;
        }
        let at = |h: i8| -> anyhow::Result<Timestamp> {
            Ok(day
                .at(h, 0, 0, 0)
                .to_zoned_datetime(tz.clone())?
                .timestamp())
        };
        store
            .add_sharing_window(charger, at(9)?, at(17)?, now)
            .await?;
    }
    Ok(())
}

async fn seed(store: &Store, out: &mut impl Write) -> anyhow::Result<()> {
    let now = Timestamp::now();
    anyhow::ensure!(
        store.list_users().await?.is_empty(),
        "the database already has users: seed fills an empty one"
    );
    let mut seeded = Seeded {
        now,
        users: vec![],
        chargers: vec![],
    };
    store
        .put_district("haidian", "Haidian District", Some("Beijing"), now)
        .await?;
    store
        .put_district("chaoyang", "Chaoyang District", Some("Beijing"), now)
        .await?;

    user(
        store,
        &mut seeded,
        "admin",
        "Platform Admin",
        Role::Admin,
        vec![],
        vec![],
    )
    .await?;
    user(
        store,
        &mut seeded,
        "regulator",
        "Beijing Municipal Commission of Development and Reform",
        Role::Regulator,
        vec![],
        vec![],
    )
    .await?;
    user(
        store,
        &mut seeded,
        "pm-greenleaf",
        "Greenleaf Property Services",
        Role::PropertyManager,
        vec![
            Scope::Community("garden-court".into()),
            Scope::Community("river-view".into()),
        ],
        vec![],
    )
    .await?;
    user(
        store,
        &mut seeded,
        "pm-capital",
        "Capital Estate Management",
        Role::PropertyManager,
        vec![Scope::Community("sunrise".into())],
        vec![],
    )
    .await?;
    user(
        store,
        &mut seeded,
        "operator-haidian",
        "GridCo Charging (Haidian)",
        Role::Operator,
        vec![Scope::District("haidian".into())],
        vec![],
    )
    .await?;
    user(
        store,
        &mut seeded,
        "operator-chaoyang",
        "GridCo Charging (Chaoyang)",
        Role::Operator,
        vec![Scope::District("chaoyang".into())],
        vec![],
    )
    .await?;
    user(
        store,
        &mut seeded,
        "aggregator",
        "North China Load Aggregator",
        Role::GridAggregator,
        vec![
            Scope::District("haidian".into()),
            Scope::District("chaoyang".into()),
        ],
        vec![],
    )
    .await?;

    let lease_end = now
        .checked_add(SignedDuration::from_hours(24 * 365 * 2))
        .context("lease end")?;
    for (c, plan) in COMMUNITIES.iter().enumerate() {
        store
            .put_community(
                CommunityRecord {
                    id: plan.id.into(),
                    name: Some(plan.name.into()),
                    rating_kva: plan.rating_kva,
                    power_factor: 0.9,
                    base_load_kw: base_load(plan.rating_kva * 0.9 * 0.6),
                    timezone: "Asia/Shanghai".into(),
                    tariff_cny_per_kwh: tariff(),
                    emergency_price_cny_per_kwh: 1.5,
                    max_emergencies: Some(3),
                    default_stay_hours: 10.0,
                    default_energy_kwh: 12.0,
                    community_meter: None,
                    created_at: now,
                    updated_at: now,
                },
                now,
            )
            .await?;
        store
            .set_community_facts(
                plan.id,
                CommunityFacts {
                    address: Some(plan.address.into()),
                    district_id: Some(plan.district.into()),
                    property_manager: Some(plan.manager.into()),
                },
                now,
            )
            .await?;
        // Clause 十二: 30 min to start charging in an EV-only bay, 15 min after charging,
        // 2 CNY per started 15 min, at most 20 CNY an episode.
        store
            .put_parking_rule(
                plan.id,
                orderly_store::NewParkingRule {
                    not_charging_minutes: 30,
                    grace_minutes: 15,
                    fee_per_interval_fen: 200,
                    interval_minutes: 15,
                    cap_fen: 2000,
                },
                "seed",
                now,
            )
            .await?;
        for b in 0..plan.bays {
            let number = format!("B1-{:03}", b + 1);
            // Pattern: 6 of 10 owned, 3 leased, the rest public; every second private bay has a
            // charger built, every third one reserved.
            let tenure = match b % 10 {
                0..=5 => Tenure::Owned,
                6..=8 => Tenure::Leased,
                _ => Tenure::Public,
            };
            let charger = match (tenure, b % 3) {
                (Tenure::Public, _) => BayCharger::Built,
                (_, 0) => BayCharger::Built,
                (_, 1) => BayCharger::Reserved,
                _ => BayCharger::None,
            };
            let holder = (tenure != Tenure::Public).then(|| format!("res-{}-{:03}", c + 1, b + 1));
            let tag = holder
                .as_ref()
                .map(|_| format!("{:02}{:06X}", c + 1, 0xA000 + b));
            if let (Some(h), Some(tag)) = (&holder, &tag) {
                let role = if charger == BayCharger::Built {
                    Role::ChargerOwner
                } else {
                    Role::Resident
                };
                let name = format!("Resident {} of {}", number, plan.name);
                user(
                    store,
                    &mut seeded,
                    h,
                    &name,
                    role,
                    vec![],
                    vec![tag.clone()],
                )
                .await?;
                store
                    .put_id_tag(
                        IdTagRecord {
                            id_tag: IdTag::parse(tag.clone())?,
                            status: AuthorizationStatus::Accepted,
                            expiry_date: None,
                            parent_id_tag: None,
                        },
                        now,
                    )
                    .await?;
            }
            let bay = store
                .create_bay(
                    plan.id,
                    BayInput {
                        number: number.clone(),
                        tenure,
                        lease_end: (tenure == Tenure::Leased).then_some(lease_end),
                        holder: holder.clone(),
                        ev_only: charger != BayCharger::None,
                        charger,
                    },
                    now,
                )
                .await?;
            if charger == BayCharger::None {
                continue;
            }
            let id = format!("{}-{:03}", plan.id.to_uppercase(), b + 1);
            let password = secret();
            let cp = ChargePointId::parse(id.clone())?;
            store
                .register_charger(
                    NewCharger {
                        id: cp.clone(),
                        password: Some(password.clone()),
                        description: Some(format!("{} bay {number}", plan.name)),
                    },
                    now,
                )
                .await?;
            let public = tenure == Tenure::Public;
            let rated = if public { 22.0 } else { 7.0 };
            store
                .put_charger_facts(
                    &id,
                    ChargerFacts {
                        community_id: Some(plan.id.into()),
                        bay_id: Some(bay.id),
                        kind: if public {
                            ChargerKind::Public
                        } else {
                            ChargerKind::SelfUse
                        },
                        owner: if public { None } else { holder.clone() },
                        operator: Some("GridCo Charging".into()),
                        model: Some(if public { "GC-22T" } else { "GC-7S" }.into()),
                        rated_power_kw: Some(rated),
                        phases: Some(if public { 3 } else { 1 }),
                        connectors: vec![RegistryConnector {
                            connector_id: 1,
                            standard: "GB/T".into(),
                            max_power_kw: Some(rated),
                        }],
                        maintainer: Some("GridCo Charging service team".into()),
                    },
                    now,
                )
                .await?;
            // Built chargers are installed and running; reserved bays have one planned.
            if charger == BayCharger::Built {
                for to in [Lifecycle::Installed, Lifecycle::Active] {
                    store.set_lifecycle(&id, to, "seed", now).await?;
                }
                insure(store, &id, holder.as_deref(), b, now).await?;
                // Clause 七: every second private charger is shared with neighbours.
                if !public && b.is_multiple_of(2) {
                    share(store, &id, now).await?;
                }
                store
                    .attach_charger(
                        ChargerElectrical {
                            charger_id: cp,
                            community_id: plan.id.into(),
                            phases: if public { 3 } else { 1 },
                            voltage_v: 220.0,
                            max_current_a: 32.0,
                            min_current_a: 6.0,
                            rate_unit: "amperes".into(),
                        },
                        now,
                    )
                    .await?;
            }
            seeded.chargers.push((id, password));
        }
    }

    writeln!(
        out,
        "seeded: 2 districts, {} communities",
        COMMUNITIES.len()
    )?;
    writeln!(
        out,
        "users (password shown once; log in with POST /api/v1/login):"
    )?;
    for (id, role, password) in &seeded.users {
        writeln!(out, "  {id:<22} {:<17} {password}", role.as_str())?;
    }
    writeln!(out, "chargers (OCPP HTTP Basic password, shown once):")?;
    for (id, password) in &seeded.chargers {
        writeln!(out, "  {id:<22} {password}")?;
    }
    Ok(())
}
