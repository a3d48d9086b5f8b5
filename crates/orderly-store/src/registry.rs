//! The registry (migration 0004): districts → communities (registry facts on the 0003 table) →
//! parking bays → chargers' registry facts and connectors, the charger lifecycle, ownership
//! transfers, and the `registry_events` outbox.
//!
//! Every change is one writer operation ([`DynOp`]) that validates first, then writes the change
//! and its outbox event in the same database transaction: the city-platform sync can never see
//! an event for a change that did not commit, nor miss one that did. Event ids come from
//! `id_sequences` inside that transaction, so they are handed out in commit order and a consumer
//! can page with `after = last id seen`.
//!
//! Lifecycle: planned → installed → active ⇄ suspended; active/suspended → transferred only by
//! an accepted transfer request; transferred → active/suspended; any state but decommissioned →
//! decommissioned, refused while a transaction is live. Decommissioning replaces the charger's
//! password hash with [`REVOKED_PASSWORD`], which no password matches: the secret is gone and the
//! gateway refuses the charger from then on.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AssertSqlSafe};

use crate::dynop::{boxed, check, corrupt, dyn_op, found, invalid, require_community, string_enum};
use crate::ops::{Applied, Outcome, take_ids};
use crate::rows::{get, ms, opt_ms, opt_ts, ts};
use crate::{Result, Store, StoreError};

/// Stored in `chargers.password_hash` of a decommissioned charger: not a PHC string, so it can
/// never verify, and [`Store::verify_charger_password`] answers `Invalid` for it without argon2.
pub(crate) const REVOKED_PASSWORD: &str = "!revoked";

string_enum!(
    /// How a parking bay is held.
    Tenure, "tenure" { Owned = "owned", Leased = "leased", Public = "public" }
);
string_enum!(
    /// Whether a bay has a charger built, one reserved (planned), or none.
    BayCharger, "charger" { Built = "built", Reserved = "reserved", None = "none" }
);
string_enum!(
    /// What a charger is for.
    ChargerKind, "kind" { SelfUse = "self_use", Public = "public", Mobile = "mobile" }
);
string_enum!(
    /// Where a charger is in its life.
    Lifecycle, "lifecycle" {
        Planned = "planned",
        Installed = "installed",
        Active = "active",
        Suspended = "suspended",
        Transferred = "transferred",
        Decommissioned = "decommissioned",
    }
);
string_enum!(
    /// State of a transfer request.
    TransferState, "state" {
        Pending = "pending",
        Accepted = "accepted",
        Declined = "declined",
        Cancelled = "cancelled",
    }
);

impl Lifecycle {
    /// Whether an operator may move a charger from `self` to `to` directly (transfers go
    /// through [`Store::decide_transfer`]).
    pub fn may_become(self, to: Lifecycle) -> bool {
        use Lifecycle::*;
        match (self, to) {
            (Decommissioned, _) | (_, Transferred) | (_, Planned) => false,
            (_, Decommissioned) => true,
            (Planned, Installed) => true,
            (Installed, Active) => true,
            (Active, Suspended) | (Suspended, Active) => true,
            (Transferred, Active) | (Transferred, Suspended) => true,
            _ => false,
        }
    }

    /// Whether the charger can change owner from this state.
    pub fn transferable(self) -> bool {
        matches!(
            self,
            Lifecycle::Active | Lifecycle::Suspended | Lifecycle::Transferred
        )
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct District {
    pub id: String,
    pub name: String,
    pub city: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// A community's registry facts (set on the closed loop's community record).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CommunityFacts {
    pub address: Option<String>,
    pub district_id: Option<String>,
    /// The property-management company, as text.
    pub property_manager: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CommunityRegistry {
    pub community_id: String,
    pub name: Option<String>,
    #[serde(flatten)]
    pub facts: CommunityFacts,
}

/// A parking bay's facts as given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BayInput {
    pub number: String,
    pub tenure: Tenure,
    /// Required for a leased bay, refused otherwise.
    pub lease_end: Option<Timestamp>,
    /// The resident who owns or leases it (none for a public bay).
    pub holder: Option<String>,
    pub ev_only: bool,
    pub charger: BayCharger,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Bay {
    pub id: i64,
    pub community_id: String,
    #[serde(flatten)]
    pub input: BayInput,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// One connector a charger is built with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegistryConnector {
    pub connector_id: i32,
    /// Plug standard, e.g. "GB/T", "Type2".
    pub standard: String,
    pub max_power_kw: Option<f64>,
}

/// A charger's registry facts as given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChargerFacts {
    pub community_id: Option<String>,
    pub bay_id: Option<i64>,
    pub kind: ChargerKind,
    pub owner: Option<String>,
    /// The operating company, as text.
    pub operator: Option<String>,
    pub model: Option<String>,
    pub rated_power_kw: Option<f64>,
    pub phases: Option<u8>,
    pub connectors: Vec<RegistryConnector>,
    /// Who maintains it (company or person, as text).
    #[serde(default)]
    pub maintainer: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChargerRegistration {
    pub charger_id: String,
    #[serde(flatten)]
    pub facts: ChargerFacts,
    pub lifecycle: Lifecycle,
    pub lifecycle_at: Timestamp,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Transfer {
    pub id: i64,
    pub charger_id: String,
    pub from_user: Option<String>,
    pub to_user: String,
    pub state: TransferState,
    pub requested_by: String,
    pub created_at: Timestamp,
    pub decided_at: Option<Timestamp>,
}

/// What a decision on a transfer request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferDecision {
    Accept,
    Decline,
    Cancel,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RegistryEvent {
    pub id: i64,
    pub at: Timestamp,
    pub kind: String,
    pub charger_id: Option<String>,
    pub community_id: Option<String>,
    pub payload: Value,
}

/// A community's construction figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConstructionFigures {
    pub community_id: String,
    pub bays: i64,
    pub bays_with_chargers: i64,
    pub reserved_bays: i64,
    pub ev_only_bays: i64,
    /// Registered chargers not decommissioned.
    pub chargers: i64,
    pub chargers_active: i64,
}

#[derive(Debug)]
enum RegistryOp {
    PutDistrict {
        id: String,
        name: String,
        city: Option<String>,
        now: Timestamp,
    },
    SetCommunityFacts {
        community_id: String,
        facts: CommunityFacts,
        now: Timestamp,
    },
    CreateBay {
        community_id: String,
        input: BayInput,
        now: Timestamp,
    },
    UpdateBay {
        id: i64,
        input: BayInput,
        now: Timestamp,
    },
    PutChargerFacts {
        charger_id: String,
        facts: ChargerFacts,
        now: Timestamp,
    },
    SetLifecycle {
        charger_id: String,
        to: Lifecycle,
        by: String,
        now: Timestamp,
    },
    RequestTransfer {
        charger_id: String,
        to_user: String,
        by: String,
        now: Timestamp,
    },
    DecideTransfer {
        id: i64,
        decision: TransferDecision,
        by: String,
        now: Timestamp,
    },
}

dyn_op!(RegistryOp);

pub(crate) async fn exists(
    conn: &mut AnyConnection,
    sql: &'static str,
    id: &str,
) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query(sql)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
        .is_some())
}

pub(crate) async fn emit(
    conn: &mut AnyConnection,
    at: Timestamp,
    kind: &str,
    charger: Option<&str>,
    community: Option<&str>,
    payload: Value,
) -> Result<i64, sqlx::Error> {
    let id = take_ids(conn, "registry_events", 1).await?;
    sqlx::query(
        "INSERT INTO registry_events (id, at_ms, kind, charger_id, community_id, payload) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id)
    .bind(ms(at))
    .bind(kind)
    .bind(charger)
    .bind(community)
    .bind(payload.to_string())
    .execute(&mut *conn)
    .await?;
    Ok(id)
}

const BAY_COLUMNS: &str = "id, community_id, number, tenure, lease_end_ms, holder_user_id, \
    ev_only, charger, created_at_ms, updated_at_ms";

fn bay(row: &AnyRow) -> Result<Bay> {
    Ok(Bay {
        id: get(row, "id")?,
        community_id: get(row, "community_id")?,
        input: BayInput {
            number: get(row, "number")?,
            tenure: get::<String>(row, "tenure")?.parse().map_err(corrupt)?,
            lease_end: opt_ts(row, "lease_end_ms")?,
            holder: get(row, "holder_user_id")?,
            ev_only: get::<i64>(row, "ev_only")? != 0,
            charger: get::<String>(row, "charger")?.parse().map_err(corrupt)?,
        },
        created_at: ts(row, "created_at_ms")?,
        updated_at: ts(row, "updated_at_ms")?,
    })
}

async fn load_bay(conn: &mut AnyConnection, id: i64) -> Result<Result<Option<Bay>>, sqlx::Error> {
    let row = sqlx::query(AssertSqlSafe(format!(
        "SELECT {BAY_COLUMNS} FROM parking_bays WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.as_ref().map(bay).transpose())
}

/// Validation shared by bay creation and update.
async fn check_bay(conn: &mut AnyConnection, input: &BayInput) -> Result<Result<()>, sqlx::Error> {
    match (input.tenure, input.lease_end) {
        (Tenure::Leased, None) => {
            return Ok(Err(invalid("lease_end", "required for a leased bay")));
        }
        (Tenure::Owned | Tenure::Public, Some(_)) => {
            return Ok(Err(invalid(
                "lease_end",
                "only a leased bay has a lease end",
            )));
        }
        _ => {}
    }
    if input.tenure == Tenure::Public && input.holder.is_some() {
        return Ok(Err(invalid("holder", "a public bay has no holder")));
    }
    if let Some(h) = &input.holder
        && !exists(conn, "SELECT 1 AS one FROM users WHERE id = $1", h).await?
    {
        return Ok(Err(invalid("holder", format!("no user {h:?}"))));
    }
    Ok(Ok(()))
}

const REGISTRATION_COLUMNS: &str = "charger_id, community_id, bay_id, kind, owner_user_id, \
    operator, model, rated_power_kw, phases, lifecycle, lifecycle_at_ms, created_at_ms, \
    updated_at_ms, maintainer";

async fn registration(
    conn: &mut AnyConnection,
    row: &AnyRow,
) -> Result<Result<ChargerRegistration>, sqlx::Error> {
    let charger_id: String = match get(row, "charger_id") {
        Ok(id) => id,
        Err(e) => return Ok(Err(e)),
    };
    let connectors: Vec<(i64, String, Option<f64>)> = sqlx::query_as(
        "SELECT connector_id, standard, max_power_kw FROM registry_connectors \
         WHERE charger_id = $1 ORDER BY connector_id",
    )
    .bind(charger_id.as_str())
    .fetch_all(&mut *conn)
    .await?;
    Ok((|| {
        let connectors = connectors
            .into_iter()
            .map(|(id, standard, max_power_kw)| {
                Ok(RegistryConnector {
                    connector_id: crate::rows::i32_of("connector_id", id)?,
                    standard,
                    max_power_kw,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let phases: Option<i64> = get(row, "phases")?;
        Ok(ChargerRegistration {
            facts: ChargerFacts {
                community_id: get(row, "community_id")?,
                bay_id: get(row, "bay_id")?,
                kind: get::<String>(row, "kind")?.parse().map_err(corrupt)?,
                owner: get(row, "owner_user_id")?,
                operator: get(row, "operator")?,
                model: get(row, "model")?,
                rated_power_kw: get(row, "rated_power_kw")?,
                phases: phases.and_then(|p| u8::try_from(p).ok()),
                connectors,
                maintainer: get(row, "maintainer")?,
            },
            lifecycle: get::<String>(row, "lifecycle")?.parse().map_err(corrupt)?,
            lifecycle_at: ts(row, "lifecycle_at_ms")?,
            created_at: ts(row, "created_at_ms")?,
            updated_at: ts(row, "updated_at_ms")?,
            charger_id,
        })
    })())
}

async fn load_registration(
    conn: &mut AnyConnection,
    charger_id: &str,
) -> Result<Result<Option<ChargerRegistration>>, sqlx::Error> {
    let row = sqlx::query(AssertSqlSafe(format!(
        "SELECT {REGISTRATION_COLUMNS} FROM charger_registry WHERE charger_id = $1"
    )))
    .bind(charger_id)
    .fetch_optional(&mut *conn)
    .await?;
    match row {
        None => Ok(Ok(None)),
        Some(row) => Ok(registration(conn, &row).await?.map(Some)),
    }
}

const TRANSFER_COLUMNS: &str =
    "id, charger_id, from_user_id, to_user_id, state, requested_by, created_at_ms, decided_at_ms";

fn transfer(row: &AnyRow) -> Result<Transfer> {
    Ok(Transfer {
        id: get(row, "id")?,
        charger_id: get(row, "charger_id")?,
        from_user: get(row, "from_user_id")?,
        to_user: get(row, "to_user_id")?,
        state: get::<String>(row, "state")?.parse().map_err(corrupt)?,
        requested_by: get(row, "requested_by")?,
        created_at: ts(row, "created_at_ms")?,
        decided_at: opt_ts(row, "decided_at_ms")?,
    })
}

async fn load_transfer(
    conn: &mut AnyConnection,
    id: i64,
) -> Result<Result<Option<Transfer>>, sqlx::Error> {
    let row = sqlx::query(AssertSqlSafe(format!(
        "SELECT {TRANSFER_COLUMNS} FROM charger_transfers WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.as_ref().map(transfer).transpose())
}

impl RegistryOp {
    async fn run(&self, conn: &mut AnyConnection) -> Applied {
        match self {
            RegistryOp::PutDistrict {
                id,
                name,
                city,
                now,
            } => {
                let r = sqlx::query(
                    "UPDATE districts SET name = $1, city = $2, updated_at_ms = $3 WHERE id = $4",
                )
                .bind(name.as_str())
                .bind(city.as_deref())
                .bind(ms(*now))
                .bind(id.as_str())
                .execute(&mut *conn)
                .await?;
                let created = r.rows_affected() == 0;
                if created {
                    sqlx::query(
                        "INSERT INTO districts (id, name, city, created_at_ms, updated_at_ms) \
                         VALUES ($1, $2, $3, $4, $5)",
                    )
                    .bind(id.as_str())
                    .bind(name.as_str())
                    .bind(city.as_deref())
                    .bind(ms(*now))
                    .bind(ms(*now))
                    .execute(&mut *conn)
                    .await?;
                }
                emit(
                    conn,
                    *now,
                    if created {
                        "district.created"
                    } else {
                        "district.updated"
                    },
                    None,
                    None,
                    json!({ "district_id": id, "name": name, "city": city }),
                )
                .await?;
                boxed(created)
            }
            RegistryOp::SetCommunityFacts {
                community_id,
                facts,
                now,
            } => {
                check!(require_community(conn, community_id).await);
                if let Some(d) = &facts.district_id
                    && !exists(conn, "SELECT 1 AS one FROM districts WHERE id = $1", d).await?
                {
                    return Ok(Err(invalid("district_id", format!("no district {d:?}"))));
                }
                sqlx::query(
                    "UPDATE communities SET address = $1, district_id = $2, \
                     property_manager = $3, updated_at_ms = $4 WHERE id = $5",
                )
                .bind(facts.address.as_deref())
                .bind(facts.district_id.as_deref())
                .bind(facts.property_manager.as_deref())
                .bind(ms(*now))
                .bind(community_id.as_str())
                .execute(&mut *conn)
                .await?;
                emit(
                    conn,
                    *now,
                    "community.updated",
                    None,
                    Some(community_id),
                    json!(facts),
                )
                .await?;
                Ok(Ok(Outcome::Done))
            }
            RegistryOp::CreateBay {
                community_id,
                input,
                now,
            } => {
                check!(require_community(conn, community_id).await);
                check!(check_bay(conn, input).await);
                let taken = sqlx::query(
                    "SELECT 1 AS one FROM parking_bays WHERE community_id = $1 AND number = $2",
                )
                .bind(community_id.as_str())
                .bind(input.number.as_str())
                .fetch_optional(&mut *conn)
                .await?
                .is_some();
                if taken {
                    return Ok(Err(StoreError::Conflict(format!(
                        "bay {} in community {community_id}",
                        input.number
                    ))));
                }
                let id = take_ids(conn, "parking_bays", 1).await?;
                sqlx::query(
                    "INSERT INTO parking_bays (id, community_id, number, tenure, lease_end_ms, \
                     holder_user_id, ev_only, charger, created_at_ms, updated_at_ms) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                )
                .bind(id)
                .bind(community_id.as_str())
                .bind(input.number.as_str())
                .bind(input.tenure.as_str())
                .bind(opt_ms(input.lease_end))
                .bind(input.holder.as_deref())
                .bind(i64::from(input.ev_only))
                .bind(input.charger.as_str())
                .bind(ms(*now))
                .bind(ms(*now))
                .execute(&mut *conn)
                .await?;
                let bay = found!(load_bay(conn, id).await, format!("bay {id}"));
                emit(
                    conn,
                    *now,
                    "bay.created",
                    None,
                    Some(community_id),
                    json!(bay),
                )
                .await?;
                boxed(bay)
            }
            RegistryOp::UpdateBay { id, input, now } => {
                let old = found!(load_bay(conn, *id).await, format!("bay {id}"));
                check!(check_bay(conn, input).await);
                let taken = sqlx::query(
                    "SELECT 1 AS one FROM parking_bays WHERE community_id = $1 AND number = $2 \
                     AND id <> $3",
                )
                .bind(old.community_id.as_str())
                .bind(input.number.as_str())
                .bind(*id)
                .fetch_optional(&mut *conn)
                .await?
                .is_some();
                if taken {
                    return Ok(Err(StoreError::Conflict(format!(
                        "bay {} in community {}",
                        input.number, old.community_id
                    ))));
                }
                sqlx::query(
                    "UPDATE parking_bays SET number = $1, tenure = $2, lease_end_ms = $3, \
                     holder_user_id = $4, ev_only = $5, charger = $6, updated_at_ms = $7 \
                     WHERE id = $8",
                )
                .bind(input.number.as_str())
                .bind(input.tenure.as_str())
                .bind(opt_ms(input.lease_end))
                .bind(input.holder.as_deref())
                .bind(i64::from(input.ev_only))
                .bind(input.charger.as_str())
                .bind(ms(*now))
                .bind(*id)
                .execute(&mut *conn)
                .await?;
                let bay = found!(load_bay(conn, *id).await, format!("bay {id}"));
                emit(
                    conn,
                    *now,
                    "bay.updated",
                    None,
                    Some(&old.community_id),
                    json!(bay),
                )
                .await?;
                boxed(bay)
            }
            RegistryOp::PutChargerFacts {
                charger_id,
                facts,
                now,
            } => put_charger_facts(conn, charger_id, facts, *now).await,
            RegistryOp::SetLifecycle {
                charger_id,
                to,
                by,
                now,
            } => set_lifecycle(conn, charger_id, *to, by, *now).await,
            RegistryOp::RequestTransfer {
                charger_id,
                to_user,
                by,
                now,
            } => {
                let reg = found!(
                    load_registration(conn, charger_id).await,
                    format!("charger {charger_id} in the registry")
                );
                if !reg.lifecycle.transferable() {
                    return Ok(Err(StoreError::Conflict(format!(
                        "charger {charger_id} is {}: only an active, suspended or transferred \
                         charger changes owner",
                        reg.lifecycle.as_str()
                    ))));
                }
                if !exists(conn, "SELECT 1 AS one FROM users WHERE id = $1", to_user).await? {
                    return Ok(Err(invalid("to_user", format!("no user {to_user:?}"))));
                }
                if reg.facts.owner.as_deref() == Some(to_user.as_str()) {
                    return Ok(Err(invalid("to_user", "already the owner")));
                }
                let pending = sqlx::query(
                    "SELECT 1 AS one FROM charger_transfers WHERE charger_id = $1 \
                     AND state = 'pending'",
                )
                .bind(charger_id.as_str())
                .fetch_optional(&mut *conn)
                .await?
                .is_some();
                if pending {
                    return Ok(Err(StoreError::Conflict(format!(
                        "a pending transfer of charger {charger_id}"
                    ))));
                }
                let id = take_ids(conn, "charger_transfers", 1).await?;
                sqlx::query(
                    "INSERT INTO charger_transfers (id, charger_id, from_user_id, to_user_id, \
                     state, requested_by, created_at_ms) VALUES ($1, $2, $3, $4, 'pending', $5, $6)",
                )
                .bind(id)
                .bind(charger_id.as_str())
                .bind(reg.facts.owner.as_deref())
                .bind(to_user.as_str())
                .bind(by.as_str())
                .bind(ms(*now))
                .execute(&mut *conn)
                .await?;
                let t = found!(load_transfer(conn, id).await, format!("transfer {id}"));
                emit(
                    conn,
                    *now,
                    "charger.transfer_requested",
                    Some(charger_id),
                    reg.facts.community_id.as_deref(),
                    json!(t),
                )
                .await?;
                boxed(t)
            }
            RegistryOp::DecideTransfer {
                id,
                decision,
                by,
                now,
            } => {
                let t = found!(load_transfer(conn, *id).await, format!("transfer {id}"));
                if t.state != TransferState::Pending {
                    return Ok(Err(StoreError::Conflict(format!(
                        "transfer {id} is already {}",
                        t.state.as_str()
                    ))));
                }
                let reg = found!(
                    load_registration(conn, &t.charger_id).await,
                    format!("charger {} in the registry", t.charger_id)
                );
                let (state, kind) = match decision {
                    TransferDecision::Accept => {
                        if !reg.lifecycle.transferable() {
                            return Ok(Err(StoreError::Conflict(format!(
                                "charger {} is {}",
                                t.charger_id,
                                reg.lifecycle.as_str()
                            ))));
                        }
                        sqlx::query(
                            "UPDATE charger_registry SET owner_user_id = $1, \
                             lifecycle = 'transferred', lifecycle_at_ms = $2, updated_at_ms = $3 \
                             WHERE charger_id = $4",
                        )
                        .bind(t.to_user.as_str())
                        .bind(ms(*now))
                        .bind(ms(*now))
                        .bind(t.charger_id.as_str())
                        .execute(&mut *conn)
                        .await?;
                        (TransferState::Accepted, "charger.transferred")
                    }
                    TransferDecision::Decline => {
                        (TransferState::Declined, "charger.transfer_declined")
                    }
                    TransferDecision::Cancel => {
                        (TransferState::Cancelled, "charger.transfer_cancelled")
                    }
                };
                sqlx::query(
                    "UPDATE charger_transfers SET state = $1, decided_at_ms = $2 WHERE id = $3",
                )
                .bind(state.as_str())
                .bind(ms(*now))
                .bind(*id)
                .execute(&mut *conn)
                .await?;
                let t = found!(load_transfer(conn, *id).await, format!("transfer {id}"));
                emit(
                    conn,
                    *now,
                    kind,
                    Some(&t.charger_id),
                    reg.facts.community_id.as_deref(),
                    json!({ "transfer": t, "decided_by": by }),
                )
                .await?;
                boxed(t)
            }
        }
    }
}

async fn put_charger_facts(
    conn: &mut AnyConnection,
    charger_id: &str,
    facts: &ChargerFacts,
    now: Timestamp,
) -> Applied {
    if !exists(
        conn,
        "SELECT 1 AS one FROM chargers WHERE id = $1",
        charger_id,
    )
    .await?
    {
        return Ok(Err(StoreError::NotFound(format!("charger {charger_id}"))));
    }
    let old = match load_registration(conn, charger_id).await? {
        Ok(old) => old,
        Err(e) => return Ok(Err(e)),
    };
    if old
        .as_ref()
        .is_some_and(|o| o.lifecycle == Lifecycle::Decommissioned)
    {
        return Ok(Err(StoreError::Conflict(format!(
            "charger {charger_id} is decommissioned"
        ))));
    }
    if let Some(c) = &facts.community_id
        && !exists(conn, "SELECT 1 AS one FROM communities WHERE id = $1", c).await?
    {
        return Ok(Err(invalid("community_id", format!("no community {c:?}"))));
    }
    if let Some(b) = facts.bay_id {
        let bay_community: Option<String> =
            sqlx::query_scalar("SELECT community_id FROM parking_bays WHERE id = $1")
                .bind(b)
                .fetch_optional(&mut *conn)
                .await?;
        match bay_community {
            None => return Ok(Err(invalid("bay_id", format!("no bay {b}")))),
            Some(c) if facts.community_id.as_deref() != Some(c.as_str()) => {
                return Ok(Err(invalid(
                    "bay_id",
                    format!("bay {b} is in community {c}, not the charger's"),
                )));
            }
            Some(_) => {}
        }
    }
    if let Some(o) = &facts.owner
        && !exists(conn, "SELECT 1 AS one FROM users WHERE id = $1", o).await?
    {
        return Ok(Err(invalid("owner", format!("no user {o:?}"))));
    }
    let created = old.is_none();
    if created {
        sqlx::query(
            "INSERT INTO charger_registry (charger_id, community_id, bay_id, kind, owner_user_id, \
             operator, model, rated_power_kw, phases, lifecycle, lifecycle_at_ms, created_at_ms, \
             updated_at_ms, maintainer) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'planned', $10, $11, $12, $13)",
        )
        .bind(charger_id)
        .bind(facts.community_id.as_deref())
        .bind(facts.bay_id)
        .bind(facts.kind.as_str())
        .bind(facts.owner.as_deref())
        .bind(facts.operator.as_deref())
        .bind(facts.model.as_deref())
        .bind(facts.rated_power_kw)
        .bind(facts.phases.map(i64::from))
        .bind(ms(now))
        .bind(ms(now))
        .bind(ms(now))
        .bind(facts.maintainer.as_deref())
        .execute(&mut *conn)
        .await?;
    } else {
        // The owner changes only through an accepted transfer; an update keeps the owner unless
        // none was recorded yet.
        if let Some(o) = &old
            && o.facts.owner.is_some()
            && o.facts.owner != facts.owner
        {
            return Ok(Err(invalid(
                "owner",
                "changes only through an accepted transfer request",
            )));
        }
        sqlx::query(
            "UPDATE charger_registry SET community_id = $1, bay_id = $2, kind = $3, \
             owner_user_id = $4, operator = $5, model = $6, rated_power_kw = $7, phases = $8, \
             updated_at_ms = $9, maintainer = $10 WHERE charger_id = $11",
        )
        .bind(facts.community_id.as_deref())
        .bind(facts.bay_id)
        .bind(facts.kind.as_str())
        .bind(facts.owner.as_deref())
        .bind(facts.operator.as_deref())
        .bind(facts.model.as_deref())
        .bind(facts.rated_power_kw)
        .bind(facts.phases.map(i64::from))
        .bind(ms(now))
        .bind(facts.maintainer.as_deref())
        .bind(charger_id)
        .execute(&mut *conn)
        .await?;
        sqlx::query("DELETE FROM registry_connectors WHERE charger_id = $1")
            .bind(charger_id)
            .execute(&mut *conn)
            .await?;
    }
    for c in &facts.connectors {
        sqlx::query(
            "INSERT INTO registry_connectors (charger_id, connector_id, standard, max_power_kw) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(charger_id)
        .bind(i64::from(c.connector_id))
        .bind(c.standard.as_str())
        .bind(c.max_power_kw)
        .execute(&mut *conn)
        .await?;
    }
    let reg = found!(
        load_registration(conn, charger_id).await,
        format!("charger {charger_id}")
    );
    emit(
        conn,
        now,
        if created {
            "charger.registered"
        } else {
            "charger.updated"
        },
        Some(charger_id),
        reg.facts.community_id.as_deref(),
        json!(reg),
    )
    .await?;
    boxed(reg)
}

async fn set_lifecycle(
    conn: &mut AnyConnection,
    charger_id: &str,
    to: Lifecycle,
    by: &str,
    now: Timestamp,
) -> Applied {
    let reg = found!(
        load_registration(conn, charger_id).await,
        format!("charger {charger_id} in the registry")
    );
    if to == Lifecycle::Transferred {
        return Ok(Err(invalid(
            "lifecycle",
            "a charger becomes transferred only when its new owner accepts a transfer request",
        )));
    }
    if !reg.lifecycle.may_become(to) {
        return Ok(Err(StoreError::Conflict(format!(
            "charger {charger_id} is {}: it cannot become {}",
            reg.lifecycle.as_str(),
            to.as_str()
        ))));
    }
    if to == Lifecycle::Decommissioned {
        // Decided in this transaction, so a StartTransaction committed just before is seen.
        let live: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM transactions WHERE charger_id = $1 AND stopped_at_ms IS NULL \
             AND origin = 'start' ORDER BY id LIMIT 1",
        )
        .bind(charger_id)
        .fetch_optional(&mut *conn)
        .await?;
        if let Some(tx) = live {
            return Ok(Err(StoreError::Conflict(format!(
                "charger {charger_id} has a live transaction ({tx}): stop it before \
                 decommissioning"
            ))));
        }
        sqlx::query("UPDATE chargers SET password_hash = $1 WHERE id = $2")
            .bind(REVOKED_PASSWORD)
            .bind(charger_id)
            .execute(&mut *conn)
            .await?;
        sqlx::query(
            "UPDATE charger_transfers SET state = 'cancelled', decided_at_ms = $1 \
             WHERE charger_id = $2 AND state = 'pending'",
        )
        .bind(ms(now))
        .bind(charger_id)
        .execute(&mut *conn)
        .await?;
    }
    sqlx::query(
        "UPDATE charger_registry SET lifecycle = $1, lifecycle_at_ms = $2, updated_at_ms = $3 \
         WHERE charger_id = $4",
    )
    .bind(to.as_str())
    .bind(ms(now))
    .bind(ms(now))
    .bind(charger_id)
    .execute(&mut *conn)
    .await?;
    emit(
        conn,
        now,
        "charger.lifecycle",
        Some(charger_id),
        reg.facts.community_id.as_deref(),
        json!({ "from": reg.lifecycle, "to": to, "by": by }),
    )
    .await?;
    let reg = found!(
        load_registration(conn, charger_id).await,
        format!("charger {charger_id}")
    );
    boxed(reg)
}

/// Filter for [`Store::list_charger_registrations`].
#[derive(Debug, Clone, Default)]
pub struct RegistrationFilter {
    pub community_id: Option<String>,
    pub owner: Option<String>,
}

impl Store {
    /// Creates or renames a district; returns whether it was created.
    pub async fn put_district(
        &self,
        id: &str,
        name: &str,
        city: Option<&str>,
        now: Timestamp,
    ) -> Result<bool> {
        self.write_boxed(RegistryOp::PutDistrict {
            id: id.to_owned(),
            name: name.to_owned(),
            city: city.map(str::to_owned),
            now,
        })
        .await
    }

    pub async fn get_district(&self, id: &str) -> Result<Option<District>> {
        let row: Option<(String, String, Option<String>, i64, i64)> = sqlx::query_as(
            "SELECT id, name, city, created_at_ms, updated_at_ms FROM districts WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        row.map(district).transpose()
    }

    pub async fn list_districts(&self) -> Result<Vec<District>> {
        let rows: Vec<(String, String, Option<String>, i64, i64)> = sqlx::query_as(
            "SELECT id, name, city, created_at_ms, updated_at_ms FROM districts ORDER BY id",
        )
        .fetch_all(self.pool())
        .await?;
        rows.into_iter().map(district).collect()
    }

    /// Sets a community's address, district and property manager. NotFound for an unknown
    /// community; Invalid(district_id) for an unknown district.
    pub async fn set_community_facts(
        &self,
        community_id: &str,
        facts: CommunityFacts,
        now: Timestamp,
    ) -> Result<()> {
        crate::done(
            self.write_dyn(RegistryOp::SetCommunityFacts {
                community_id: community_id.to_owned(),
                facts,
                now,
            })
            .await?,
        )
    }

    pub async fn community_registry(&self, id: &str) -> Result<Option<CommunityRegistry>> {
        let row: Option<CommunityRow> = sqlx::query_as(
            "SELECT id, name, address, district_id, property_manager FROM communities \
             WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(community))
    }

    /// Every community's registry facts, by id.
    pub async fn list_community_registry(&self) -> Result<Vec<CommunityRegistry>> {
        let rows: Vec<CommunityRow> = sqlx::query_as(
            "SELECT id, name, address, district_id, property_manager FROM communities ORDER BY id",
        )
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(community).collect())
    }

    /// Adds a bay to a community. NotFound (community), Conflict (number taken), Invalid.
    pub async fn create_bay(
        &self,
        community_id: &str,
        input: BayInput,
        now: Timestamp,
    ) -> Result<Bay> {
        self.write_boxed(RegistryOp::CreateBay {
            community_id: community_id.to_owned(),
            input,
            now,
        })
        .await
    }

    pub async fn update_bay(&self, id: i64, input: BayInput, now: Timestamp) -> Result<Bay> {
        self.write_boxed(RegistryOp::UpdateBay { id, input, now })
            .await
    }

    pub async fn get_bay(&self, id: i64) -> Result<Option<Bay>> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {BAY_COLUMNS} FROM parking_bays WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(bay).transpose()
    }

    /// Bays of a community (or, with None, of every community), by community and number.
    pub async fn list_bays(&self, community_id: Option<&str>) -> Result<Vec<Bay>> {
        let rows = match community_id {
            Some(c) => {
                sqlx::query(AssertSqlSafe(format!(
                    "SELECT {BAY_COLUMNS} FROM parking_bays WHERE community_id = $1 \
                     ORDER BY number"
                )))
                .bind(c)
                .fetch_all(self.pool())
                .await?
            }
            None => {
                sqlx::query(AssertSqlSafe(format!(
                    "SELECT {BAY_COLUMNS} FROM parking_bays ORDER BY community_id, number"
                )))
                .fetch_all(self.pool())
                .await?
            }
        };
        rows.iter().map(bay).collect()
    }

    /// Sets a charger's registry facts (first time: lifecycle `planned`). NotFound for a charger
    /// not in `chargers`; Conflict when decommissioned; Invalid for a reference to nothing, or
    /// an owner change (owners change through transfers).
    pub async fn put_charger_facts(
        &self,
        charger_id: &str,
        facts: ChargerFacts,
        now: Timestamp,
    ) -> Result<ChargerRegistration> {
        self.write_boxed(RegistryOp::PutChargerFacts {
            charger_id: charger_id.to_owned(),
            facts,
            now,
        })
        .await
    }

    pub async fn charger_registration(
        &self,
        charger_id: &str,
    ) -> Result<Option<ChargerRegistration>> {
        let mut conn = self.pool().acquire().await?;
        load_registration(&mut conn, charger_id).await?
    }

    /// Registered chargers matching `filter`, by id.
    pub async fn list_charger_registrations(
        &self,
        filter: &RegistrationFilter,
    ) -> Result<Vec<ChargerRegistration>> {
        let mut conn = self.pool().acquire().await?;
        let mut sql = format!("SELECT {REGISTRATION_COLUMNS} FROM charger_registry WHERE 1 = 1");
        let mut binds = Vec::new();
        if let Some(c) = &filter.community_id {
            binds.push(c.clone());
            sql.push_str(&format!(" AND community_id = ${}", binds.len()));
        }
        if let Some(o) = &filter.owner {
            binds.push(o.clone());
            sql.push_str(&format!(" AND owner_user_id = ${}", binds.len()));
        }
        sql.push_str(" ORDER BY charger_id");
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for b in &binds {
            q = q.bind(b.as_str());
        }
        let rows = q.fetch_all(&mut *conn).await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            out.push(registration(&mut conn, row).await??);
        }
        Ok(out)
    }

    /// Moves a charger along its lifecycle (see the module docs). `by` is recorded in the event.
    pub async fn set_lifecycle(
        &self,
        charger_id: &str,
        to: Lifecycle,
        by: &str,
        now: Timestamp,
    ) -> Result<ChargerRegistration> {
        self.write_boxed(RegistryOp::SetLifecycle {
            charger_id: charger_id.to_owned(),
            to,
            by: by.to_owned(),
            now,
        })
        .await
    }

    /// Asks `to_user` to take over a charger; nothing changes until they accept.
    pub async fn request_transfer(
        &self,
        charger_id: &str,
        to_user: &str,
        by: &str,
        now: Timestamp,
    ) -> Result<Transfer> {
        self.write_boxed(RegistryOp::RequestTransfer {
            charger_id: charger_id.to_owned(),
            to_user: to_user.to_owned(),
            by: by.to_owned(),
            now,
        })
        .await
    }

    /// Accepts (the owner changes, lifecycle `transferred`), declines or cancels a pending
    /// transfer. Who may decide is the caller's check.
    pub async fn decide_transfer(
        &self,
        id: i64,
        decision: TransferDecision,
        by: &str,
        now: Timestamp,
    ) -> Result<Transfer> {
        self.write_boxed(RegistryOp::DecideTransfer {
            id,
            decision,
            by: by.to_owned(),
            now,
        })
        .await
    }

    pub async fn get_transfer(&self, id: i64) -> Result<Option<Transfer>> {
        let mut conn = self.pool().acquire().await?;
        load_transfer(&mut conn, id).await?
    }

    /// Transfers of one charger, newest first.
    pub async fn list_transfers(&self, charger_id: &str) -> Result<Vec<Transfer>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {TRANSFER_COLUMNS} FROM charger_transfers WHERE charger_id = $1 ORDER BY id DESC"
        )))
        .bind(charger_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(transfer).collect()
    }

    /// Outbox events with id > `after`, oldest first, at most `limit`.
    pub async fn registry_events(&self, after: i64, limit: u32) -> Result<Vec<RegistryEvent>> {
        let rows: Vec<EventRow> = sqlx::query_as(
            "SELECT id, at_ms, kind, charger_id, community_id, payload FROM registry_events \
                 WHERE id > $1 ORDER BY id LIMIT $2",
        )
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        rows.into_iter()
            .map(|(id, at, kind, charger_id, community_id, payload)| {
                Ok(RegistryEvent {
                    id,
                    at: Timestamp::from_millisecond(at)
                        .map_err(|e| StoreError::Corrupt(format!("at_ms: {e}")))?,
                    kind,
                    charger_id,
                    community_id,
                    payload: serde_json::from_str(&payload)
                        .map_err(|e| StoreError::Corrupt(format!("payload: {e}")))?,
                })
            })
            .collect()
    }

    /// Bays, bays with chargers, reserved bays… of one community (None if it does not exist).
    pub async fn construction_figures(
        &self,
        community_id: &str,
    ) -> Result<Option<ConstructionFigures>> {
        if self.community_registry(community_id).await?.is_none() {
            return Ok(None);
        }
        let (bays, built, reserved, ev_only): (i64, i64, i64, i64) = sqlx::query_as(
            // CASTs: PostgreSQL sums BIGINTs as NUMERIC, which the Any driver cannot decode.
            "SELECT CAST(COUNT(*) AS BIGINT), \
             CAST(COALESCE(SUM(CASE WHEN charger = 'built' THEN 1 ELSE 0 END), 0) AS BIGINT), \
             CAST(COALESCE(SUM(CASE WHEN charger = 'reserved' THEN 1 ELSE 0 END), 0) AS BIGINT), \
             CAST(COALESCE(SUM(ev_only), 0) AS BIGINT) FROM parking_bays WHERE community_id = $1",
        )
        .bind(community_id)
        .fetch_one(self.pool())
        .await?;
        let (chargers, active): (i64, i64) = sqlx::query_as(
            "SELECT CAST(COUNT(*) AS BIGINT), \
             CAST(COALESCE(SUM(CASE WHEN lifecycle = 'active' THEN 1 ELSE 0 END), 0) AS BIGINT) \
             FROM charger_registry WHERE community_id = $1 AND lifecycle <> 'decommissioned'",
        )
        .bind(community_id)
        .fetch_one(self.pool())
        .await?;
        Ok(Some(ConstructionFigures {
            community_id: community_id.to_owned(),
            bays,
            bays_with_chargers: built,
            reserved_bays: reserved,
            ev_only_bays: ev_only,
            chargers,
            chargers_active: active,
        }))
    }
}

/// id, at_ms, kind, charger_id, community_id, payload.
type EventRow = (i64, i64, String, Option<String>, Option<String>, String);

type CommunityRow = (
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

fn community(
    (id, name, address, district_id, property_manager): CommunityRow,
) -> CommunityRegistry {
    CommunityRegistry {
        community_id: id,
        name,
        facts: CommunityFacts {
            address,
            district_id,
            property_manager,
        },
    }
}

fn district(
    (id, name, city, created, updated): (String, String, Option<String>, i64, i64),
) -> Result<District> {
    let t = |v: i64| {
        Timestamp::from_millisecond(v).map_err(|e| StoreError::Corrupt(format!("districts: {e}")))
    };
    Ok(District {
        id,
        name,
        city,
        created_at: t(created)?,
        updated_at: t(updated)?,
    })
}
