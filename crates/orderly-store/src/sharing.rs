//! Sharing private chargers with neighbours (migration 0007, policy clause 七): the owner's
//! agreement per charger, availability windows, neighbours' bookings, the rule that decides who
//! may charge on a shared private charger (Authorize and StartTransaction), and one settlement
//! per booking (a session at StopTransaction, a no-show, a late cancellation).
//!
//! The rules are a sans-IO core ([`Terms::validate`], [`decide`], [`Figures::session`],
//! [`Figures::fee`]): values and `now` in, decisions and figures out. The writer operations and
//! the gateway hooks only load rows, ask the core, and write what it says. Like the registry,
//! every change is one writer operation that validates first, emits its `registry_events` entry
//! and enqueues its notifications in the same commit. The gateway hooks run inside the
//! StartTransaction / StopTransaction write itself, so a booking cannot be used twice and a
//! session is settled in the commit that records its stop.

use std::pin::Pin;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AssertSqlSafe};

use crate::notifications::{NewNotification, enqueue};
use crate::ops::{Applied, DynOp, Outcome, take_ids};
use crate::registry::emit;
use crate::rows::{get, ms, ts};
use crate::{Result, Store, StoreError};

// ----- the sans-IO core -----------------------------------------------------------------------

/// An owner's sharing agreement for one charger. Fees are whole fen; prices per kWh and per
/// hour are CNY as agreed (tariffs often have sub-fen precision).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Terms {
    pub price_per_kwh_cny: f64,
    pub price_per_hour_cny: Option<f64>,
    /// The owner's share of every settlement, 0 to 100; the rest is the operator's.
    pub owner_share_percent: f64,
    /// The operator who gets the rest.
    pub operator: String,
    /// The owner's own car keeps priority over a booking that has not started.
    pub owner_priority: bool,
    /// A booking not started this long after its start is a no-show.
    pub no_show_grace_min: i64,
    pub no_show_fee_fen: i64,
    /// Cancelling at least this long before the start is free.
    pub cancel_notice_min: i64,
    pub late_cancel_fee_fen: i64,
}

/// Upper bounds that catch typing mistakes (a price in fen typed as CNY).
const MAX_PRICE_PER_KWH: f64 = 100.0;
const MAX_PRICE_PER_HOUR: f64 = 1_000.0;
const MAX_FEE_FEN: i64 = 1_000_000;
const MAX_MINUTES: i64 = 7 * 24 * 60;
/// The longest window or booking.
pub const MAX_SPAN: SignedDuration = SignedDuration::from_hours(31 * 24);

fn invalid(field: &'static str, reason: impl Into<String>) -> StoreError {
    StoreError::Invalid {
        field,
        reason: reason.into(),
    }
}

impl Terms {
    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<()> {
        let p = self.price_per_kwh_cny;
        if !(p.is_finite() && (0.0..=MAX_PRICE_PER_KWH).contains(&p)) {
            return Err(invalid(
                "price_per_kwh_cny",
                format!("must be 0 to {MAX_PRICE_PER_KWH}"),
            ));
        }
        if let Some(h) = self.price_per_hour_cny
            && !(h.is_finite() && (0.0..=MAX_PRICE_PER_HOUR).contains(&h))
        {
            return Err(invalid(
                "price_per_hour_cny",
                format!("must be 0 to {MAX_PRICE_PER_HOUR}"),
            ));
        }
        let s = self.owner_share_percent;
        if !(s.is_finite() && (0.0..=100.0).contains(&s)) {
            return Err(invalid("owner_share_percent", "must be 0 to 100"));
        }
        if self.operator.trim().is_empty() || self.operator.chars().count() > 200 {
            return Err(invalid(
                "operator",
                "must be 1 to 200 characters, not blank",
            ));
        }
        for (field, v) in [
            ("no_show_grace_min", self.no_show_grace_min),
            ("cancel_notice_min", self.cancel_notice_min),
        ] {
            if !(0..=MAX_MINUTES).contains(&v) {
                return Err(invalid(field, format!("must be 0 to {MAX_MINUTES}")));
            }
        }
        for (field, v) in [
            ("no_show_fee_cny", self.no_show_fee_fen),
            ("late_cancel_fee_cny", self.late_cancel_fee_fen),
        ] {
            if !(0..=MAX_FEE_FEN).contains(&v) {
                return Err(invalid(
                    field,
                    format!("must be 0 to {} CNY", MAX_FEE_FEN / 100),
                ));
            }
        }
        Ok(())
    }
}

/// The money of one settlement, in fen: `energy_fee + time_fee + fee = total` and
/// `owner_share + operator_share = total`, exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Figures {
    pub energy_wh: i64,
    pub duration_ms: i64,
    pub energy_fee_fen: i64,
    pub time_fee_fen: i64,
    /// A no-show or late-cancellation fee.
    pub fee_fen: i64,
    pub total_fen: i64,
    pub owner_share_fen: i64,
    pub operator_share_fen: i64,
}

/// CNY amount → fen, rounded half up (amounts here are never negative). The tiny nudge keeps
/// binary representation error from turning an exact half fen (e.g. 0.125 CNY) downwards.
fn fen(cny: f64) -> i64 {
    (cny * 100.0 + 1e-9).round() as i64
}

impl Figures {
    /// A charging session: energy at the price per kWh, plus the time at the price per hour,
    /// each rounded to the fen; the owner's share is rounded to the fen and the operator gets
    /// the rest, so the shares always add up to the total.
    pub fn session(terms: &Terms, energy_wh: i64, duration_ms: i64) -> Self {
        let energy_wh = energy_wh.max(0);
        let duration_ms = duration_ms.max(0);
        let energy_fee_fen = fen(energy_wh as f64 / 1000.0 * terms.price_per_kwh_cny);
        let time_fee_fen = terms
            .price_per_hour_cny
            .map_or(0, |p| fen(duration_ms as f64 / 3_600_000.0 * p));
        Self::split(
            terms,
            energy_wh,
            duration_ms,
            energy_fee_fen,
            time_fee_fen,
            0,
        )
    }

    /// A flat fee (no-show, late cancellation), split like a session.
    pub fn fee(terms: &Terms, fee_fen: i64) -> Self {
        Self::split(terms, 0, 0, 0, 0, fee_fen.max(0))
    }

    fn split(
        terms: &Terms,
        energy_wh: i64,
        duration_ms: i64,
        energy_fee_fen: i64,
        time_fee_fen: i64,
        fee_fen: i64,
    ) -> Self {
        // Saturating: meter readings come from chargers and may be absurd; a figure must never
        // overflow (and panic) in the write that records a stop.
        let total_fen = energy_fee_fen
            .saturating_add(time_fee_fen)
            .saturating_add(fee_fen);
        let owner_share_fen =
            fen(total_fen as f64 / 100.0 * terms.owner_share_percent / 100.0).clamp(0, total_fen);
        Self {
            energy_wh,
            duration_ms,
            energy_fee_fen,
            time_fee_fen,
            fee_fen,
            total_fen,
            owner_share_fen,
            operator_share_fen: total_fen.saturating_sub(owner_share_fen),
        }
    }
}

/// What a charger asks the central system about a tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Authorize,
    StartTransaction,
}

/// A booking of the charger whose time covers `now` (pending or active).
#[derive(Debug, Clone, PartialEq)]
pub struct CurrentBooking {
    pub id: i64,
    pub booker: String,
    pub id_tag: String,
    /// A transaction has started on it.
    pub started: bool,
    pub owner_priority: bool,
}

/// The sharing rule's answer for a tag on a privately owned charger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The owner charges, no booking in the way.
    Owner,
    /// The owner charges and takes priority over this booking, which has not started.
    OwnerBumps { booking: i64 },
    /// The tag's booking covers now.
    Booking { booking: i64 },
    /// Anyone else, or the owner while a neighbour's booking holds the charger.
    Refuse,
}

/// The sharing rule on a privately owned charger: the owner's tags, and a booking's tag while
/// its booking covers now. Without owner priority the owner waits for a neighbour's booking
/// to end; with it, the owner may take the charger from a booking that has not started (never
/// from a neighbour who is charging). A booking starts one transaction only.
pub fn decide(
    owner: &str,
    tag_user: Option<&str>,
    tag: &str,
    current: Option<&CurrentBooking>,
    purpose: Purpose,
) -> Decision {
    if tag_user == Some(owner) {
        return match current {
            None => Decision::Owner,
            Some(b) if b.owner_priority && !b.started => match purpose {
                Purpose::Authorize => Decision::Owner,
                Purpose::StartTransaction => Decision::OwnerBumps { booking: b.id },
            },
            Some(_) => Decision::Refuse,
        };
    }
    match current {
        Some(b) if b.id_tag == tag && (purpose == Purpose::Authorize || !b.started) => {
            Decision::Booking { booking: b.id }
        }
        _ => Decision::Refuse,
    }
}

/// Parts of `window` not taken by `taken` intervals (sorted output, clipped to `from`).
pub fn free_parts(
    window: (Timestamp, Timestamp),
    taken: &[(Timestamp, Timestamp)],
    from: Timestamp,
) -> Vec<(Timestamp, Timestamp)> {
    let mut taken: Vec<_> = taken.to_vec();
    taken.sort();
    let mut out = Vec::new();
    let mut cursor = window.0.max(from);
    for (s, e) in taken {
        if e <= cursor {
            continue;
        }
        if s >= window.1 {
            break;
        }
        if s > cursor {
            out.push((cursor, s.min(window.1)));
        }
        cursor = cursor.max(e);
    }
    if cursor < window.1 {
        out.push((cursor, window.1));
    }
    out
}

// ----- records --------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Agreement {
    pub charger_id: String,
    #[serde(flatten)]
    pub terms: Terms,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Window {
    pub id: i64,
    pub charger_id: String,
    pub start: Timestamp,
    pub end: Timestamp,
    pub created_at: Timestamp,
}

/// A booking's state: pending (booked), active (its transaction started), completed (stopped
/// and settled), cancelled, no_show, bumped (the owner took priority).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BookingState {
    Pending,
    Active,
    Completed,
    Cancelled,
    NoShow,
    Bumped,
}

impl BookingState {
    pub const ALL: [BookingState; 6] = [
        BookingState::Pending,
        BookingState::Active,
        BookingState::Completed,
        BookingState::Cancelled,
        BookingState::NoShow,
        BookingState::Bumped,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            BookingState::Pending => "pending",
            BookingState::Active => "active",
            BookingState::Completed => "completed",
            BookingState::Cancelled => "cancelled",
            BookingState::NoShow => "no_show",
            BookingState::Bumped => "bumped",
        }
    }
    fn parse(s: &str) -> Result<Self> {
        BookingState::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| StoreError::Corrupt(format!("sharing_bookings.state: {s:?}")))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Booking {
    pub id: i64,
    pub window_id: i64,
    pub charger_id: String,
    pub owner: Option<String>,
    pub community_id: Option<String>,
    pub booker: String,
    pub id_tag: String,
    pub start: Timestamp,
    pub end: Timestamp,
    pub state: BookingState,
    /// The agreement as it was when booked.
    pub terms: Terms,
    pub transaction_id: Option<i64>,
    pub cancelled_by: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub settlement: Option<Settlement>,
}

/// A booking to make.
#[derive(Debug, Clone, PartialEq)]
pub struct NewBooking {
    pub charger_id: String,
    pub booker: String,
    pub id_tag: String,
    pub start: Timestamp,
    pub end: Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SettlementKind {
    Session,
    NoShow,
    LateCancel,
}

impl SettlementKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SettlementKind::Session => "session",
            SettlementKind::NoShow => "no_show",
            SettlementKind::LateCancel => "late_cancel",
        }
    }
    fn parse(s: &str) -> Result<Self> {
        [Self::Session, Self::NoShow, Self::LateCancel]
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| StoreError::Corrupt(format!("sharing_settlements.kind: {s:?}")))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Settlement {
    pub id: i64,
    pub booking_id: i64,
    pub kind: SettlementKind,
    pub charger_id: String,
    pub community_id: Option<String>,
    pub owner: Option<String>,
    pub operator: String,
    pub booker: String,
    pub transaction_id: Option<i64>,
    pub at: Timestamp,
    #[serde(flatten)]
    pub figures: Figures,
}

/// Which bookings to list (all given conditions hold).
#[derive(Debug, Clone, Default)]
pub struct BookingFilter {
    pub booker: Option<String>,
    pub owner: Option<String>,
    pub charger_id: Option<String>,
    pub community_id: Option<String>,
}

/// An open window and its parts still free.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Offer {
    pub window: Window,
    pub community_id: Option<String>,
    pub owner: Option<String>,
    pub terms: Terms,
    pub free: Vec<(Timestamp, Timestamp)>,
}

// ----- rows -----------------------------------------------------------------------------------

const AGREEMENT_COLUMNS: &str = "charger_id, price_per_kwh_cny, price_per_hour_cny, \
    owner_share_percent, operator, owner_priority, no_show_grace_min, no_show_fee_fen, \
    cancel_notice_min, late_cancel_fee_fen, created_at_ms, updated_at_ms";

fn agreement(row: &AnyRow) -> Result<Agreement> {
    Ok(Agreement {
        charger_id: get(row, "charger_id")?,
        terms: Terms {
            price_per_kwh_cny: get(row, "price_per_kwh_cny")?,
            price_per_hour_cny: get(row, "price_per_hour_cny")?,
            owner_share_percent: get(row, "owner_share_percent")?,
            operator: get(row, "operator")?,
            owner_priority: get::<i64>(row, "owner_priority")? != 0,
            no_show_grace_min: get(row, "no_show_grace_min")?,
            no_show_fee_fen: get(row, "no_show_fee_fen")?,
            cancel_notice_min: get(row, "cancel_notice_min")?,
            late_cancel_fee_fen: get(row, "late_cancel_fee_fen")?,
        },
        created_at: ts(row, "created_at_ms")?,
        updated_at: ts(row, "updated_at_ms")?,
    })
}

const WINDOW_COLUMNS: &str = "id, charger_id, start_ms, end_ms, created_at_ms";

fn window(row: &AnyRow) -> Result<Window> {
    Ok(Window {
        id: get(row, "id")?,
        charger_id: get(row, "charger_id")?,
        start: ts(row, "start_ms")?,
        end: ts(row, "end_ms")?,
        created_at: ts(row, "created_at_ms")?,
    })
}

const BOOKING_COLUMNS: &str = "id, window_id, charger_id, owner_user_id, community_id, booker, \
    id_tag, start_ms, end_ms, state, terms, transaction_id, cancelled_by, created_at_ms, \
    updated_at_ms";

fn booking(row: &AnyRow) -> Result<Booking> {
    let terms: String = get(row, "terms")?;
    Ok(Booking {
        id: get(row, "id")?,
        window_id: get(row, "window_id")?,
        charger_id: get(row, "charger_id")?,
        owner: get(row, "owner_user_id")?,
        community_id: get(row, "community_id")?,
        booker: get(row, "booker")?,
        id_tag: get(row, "id_tag")?,
        start: ts(row, "start_ms")?,
        end: ts(row, "end_ms")?,
        state: BookingState::parse(&get::<String>(row, "state")?)?,
        terms: serde_json::from_str(&terms)
            .map_err(|e| StoreError::Corrupt(format!("sharing_bookings.terms: {e}")))?,
        transaction_id: get(row, "transaction_id")?,
        cancelled_by: get(row, "cancelled_by")?,
        created_at: ts(row, "created_at_ms")?,
        updated_at: ts(row, "updated_at_ms")?,
        settlement: None,
    })
}

const SETTLEMENT_COLUMNS: &str = "id, booking_id, kind, charger_id, community_id, owner_user_id, \
    operator, booker, transaction_id, at_ms, energy_wh, duration_ms, energy_fee_fen, \
    time_fee_fen, fee_fen, total_fen, owner_share_fen, operator_share_fen";

fn settlement(row: &AnyRow) -> Result<Settlement> {
    Ok(Settlement {
        id: get(row, "id")?,
        booking_id: get(row, "booking_id")?,
        kind: SettlementKind::parse(&get::<String>(row, "kind")?)?,
        charger_id: get(row, "charger_id")?,
        community_id: get(row, "community_id")?,
        owner: get(row, "owner_user_id")?,
        operator: get(row, "operator")?,
        booker: get(row, "booker")?,
        transaction_id: get(row, "transaction_id")?,
        at: ts(row, "at_ms")?,
        figures: Figures {
            energy_wh: get(row, "energy_wh")?,
            duration_ms: get(row, "duration_ms")?,
            energy_fee_fen: get(row, "energy_fee_fen")?,
            time_fee_fen: get(row, "time_fee_fen")?,
            fee_fen: get(row, "fee_fen")?,
            total_fen: get(row, "total_fen")?,
            owner_share_fen: get(row, "owner_share_fen")?,
            operator_share_fen: get(row, "operator_share_fen")?,
        },
    })
}

/// A charger's registry kind, owner and community.
struct Private {
    kind: String,
    owner: Option<String>,
    community: Option<String>,
    lifecycle: String,
}

async fn registry_of(
    conn: &mut AnyConnection,
    charger_id: &str,
) -> Result<Option<Private>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT kind, owner_user_id, community_id, lifecycle FROM charger_registry \
         WHERE charger_id = $1",
    )
    .bind(charger_id)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.map(|r| {
        use sqlx::Row;
        Private {
            kind: r.try_get("kind").unwrap_or_default(),
            owner: r.try_get("owner_user_id").unwrap_or(None),
            community: r.try_get("community_id").unwrap_or(None),
            lifecycle: r.try_get("lifecycle").unwrap_or_default(),
        }
    }))
}

async fn load_agreement(
    conn: &mut AnyConnection,
    charger_id: &str,
) -> Result<Result<Option<Agreement>>, sqlx::Error> {
    let row = sqlx::query(AssertSqlSafe(format!(
        "SELECT {AGREEMENT_COLUMNS} FROM sharing_agreements WHERE charger_id = $1"
    )))
    .bind(charger_id)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.as_ref().map(agreement).transpose())
}

async fn load_booking(
    conn: &mut AnyConnection,
    id: i64,
) -> Result<Result<Option<Booking>>, sqlx::Error> {
    let row = sqlx::query(AssertSqlSafe(format!(
        "SELECT {BOOKING_COLUMNS} FROM sharing_bookings WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else {
        return Ok(Ok(None));
    };
    let mut b = match booking(&row) {
        Ok(b) => b,
        Err(e) => return Ok(Err(e)),
    };
    let s = sqlx::query(AssertSqlSafe(format!(
        "SELECT {SETTLEMENT_COLUMNS} FROM sharing_settlements WHERE booking_id = $1"
    )))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    match s.as_ref().map(settlement).transpose() {
        Ok(s) => b.settlement = s,
        Err(e) => return Ok(Err(e)),
    }
    Ok(Ok(Some(b)))
}

/// A reload after this operation has written: a failure here must not be an inner (decision)
/// error, which would let the batch commit the partial write, so it aborts the batch instead;
/// the writer then re-applies this operation alone, and it fails alone.
fn after_write<T>(r: Result<T>) -> Result<T, sqlx::Error> {
    r.map_err(|e| sqlx::Error::Protocol(format!("reloading a sharing record after writing: {e}")))
}

fn boxed<T: Send + 'static>(v: T) -> Applied {
    Ok(Ok(Outcome::Boxed(Box::new(v))))
}

macro_rules! found {
    ($e:expr, $what:expr) => {
        match $e? {
            Ok(Some(v)) => v,
            Ok(None) => return Ok(Err(StoreError::NotFound($what))),
            Err(e) => return Ok(Err(e)),
        }
    };
}

/// Same `found!` for a load that cannot fail to decode.
macro_rules! decoded {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(e) => return Ok(Err(e)),
        }
    };
}

async fn set_state(
    conn: &mut AnyConnection,
    id: i64,
    state: BookingState,
    cancelled_by: Option<&str>,
    now: Timestamp,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE sharing_bookings SET state = $1, cancelled_by = COALESCE($2, cancelled_by), \
         updated_at_ms = $3 WHERE id = $4",
    )
    .bind(state.as_str())
    .bind(cancelled_by)
    .bind(ms(now))
    .bind(id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn insert_settlement(
    conn: &mut AnyConnection,
    b: &Booking,
    kind: SettlementKind,
    transaction_id: Option<i64>,
    figures: &Figures,
    at: Timestamp,
) -> Result<i64, sqlx::Error> {
    let id = take_ids(conn, "sharing_settlements", 1).await?;
    sqlx::query(
        "INSERT INTO sharing_settlements (id, booking_id, kind, charger_id, community_id, \
         owner_user_id, operator, booker, transaction_id, at_ms, energy_wh, duration_ms, \
         energy_fee_fen, time_fee_fen, fee_fen, total_fen, owner_share_fen, operator_share_fen) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)",
    )
    .bind(id)
    .bind(b.id)
    .bind(kind.as_str())
    .bind(b.charger_id.as_str())
    .bind(b.community_id.as_deref())
    .bind(b.owner.as_deref())
    .bind(b.terms.operator.as_str())
    .bind(b.booker.as_str())
    .bind(transaction_id)
    .bind(ms(at))
    .bind(figures.energy_wh)
    .bind(figures.duration_ms)
    .bind(figures.energy_fee_fen)
    .bind(figures.time_fee_fen)
    .bind(figures.fee_fen)
    .bind(figures.total_fen)
    .bind(figures.owner_share_fen)
    .bind(figures.operator_share_fen)
    .execute(&mut *conn)
    .await?;
    Ok(id)
}

fn note(b: &Booking, kind: &str, recipient: Option<&str>, message: String) -> NewNotification {
    let mut n = NewNotification::new(kind, message);
    n.recipient = recipient.map(str::to_owned);
    n.community_id = b.community_id.clone();
    n.charger_id = Some(b.charger_id.clone());
    n.data = json!({ "booking_id": b.id, "charger_id": b.charger_id, "booker": b.booker,
                     "start": b.start, "end": b.end });
    n.dedupe_key = Some(format!("{kind}:{}:{}", b.id, recipient.unwrap_or("")));
    n
}

/// Records a state change of a booking: the change event, reloaded after the write.
async fn emit_booking(
    conn: &mut AnyConnection,
    id: i64,
    kind: &str,
    now: Timestamp,
) -> Result<Result<Booking>, sqlx::Error> {
    let b = match load_booking(conn, id).await? {
        Ok(Some(b)) => b,
        Ok(None) => return Ok(Err(StoreError::NotFound(format!("booking {id}")))),
        Err(e) => return Ok(Err(e)),
    };
    emit(
        conn,
        now,
        kind,
        Some(&b.charger_id),
        b.community_id.as_deref(),
        json!(b),
    )
    .await?;
    Ok(Ok(b))
}

// ----- gateway hooks (inside the caller's read or write) --------------------------------------

/// The sharing rule's verdict on `tag` at `charger` at `now`; None when the charger is not a
/// privately owned self-use charger (then the tag's own status stands, as before sharing).
pub(crate) async fn gate(
    conn: &mut AnyConnection,
    charger_id: &str,
    tag: &str,
    now: Timestamp,
    purpose: Purpose,
) -> Result<Option<Decision>, sqlx::Error> {
    let Some(reg) = registry_of(conn, charger_id).await? else {
        return Ok(None);
    };
    let Some(owner) = reg.owner.filter(|_| reg.kind == "self_use") else {
        return Ok(None);
    };
    let tag_user: Option<String> =
        sqlx::query_scalar("SELECT user_id FROM user_id_tags WHERE tag = $1")
            .bind(tag)
            .fetch_optional(&mut *conn)
            .await?;
    let row = sqlx::query(AssertSqlSafe(format!(
        "SELECT {BOOKING_COLUMNS} FROM sharing_bookings WHERE charger_id = $1 \
         AND state IN ('pending', 'active') AND start_ms <= $2 AND end_ms > $2 \
         ORDER BY start_ms LIMIT 1"
    )))
    .bind(charger_id)
    .bind(ms(now))
    .fetch_optional(&mut *conn)
    .await?;
    // A row that does not decode holds nobody's right to charge: treated as no booking, and
    // logged by the reads that list it.
    let current = row
        .as_ref()
        .and_then(|r| booking(r).ok())
        .map(|b| CurrentBooking {
            id: b.id,
            booker: b.booker,
            id_tag: b.id_tag,
            started: b.state == BookingState::Active,
            owner_priority: b.terms.owner_priority,
        });
    Ok(Some(decide(
        &owner,
        tag_user.as_deref(),
        tag,
        current.as_ref(),
        purpose,
    )))
}

/// After a StartTransaction accepted by `decision` was inserted as `transaction_id`: a booking
/// becomes active and linked to it; a bumped booking is marked and its booker told.
pub(crate) async fn started(
    conn: &mut AnyConnection,
    decision: &Decision,
    transaction_id: i64,
    now: Timestamp,
) -> Result<(), sqlx::Error> {
    match *decision {
        Decision::Booking { booking } => {
            sqlx::query(
                "UPDATE sharing_bookings SET state = 'active', transaction_id = $1, \
                 updated_at_ms = $2 WHERE id = $3",
            )
            .bind(transaction_id)
            .bind(ms(now))
            .bind(booking)
            .execute(&mut *conn)
            .await?;
            let _ = emit_booking(conn, booking, "sharing.booking_started", now).await?;
        }
        Decision::OwnerBumps { booking } => {
            set_state(conn, booking, BookingState::Bumped, None, now).await?;
            if let Ok(b) = emit_booking(conn, booking, "sharing.booking_bumped", now).await? {
                let message = format!(
                    "Your booking {} of charger {} from {} was taken back by its owner, who has \
                     priority under the sharing agreement; no fee is due.",
                    b.id, b.charger_id, b.start
                );
                enqueue(
                    conn,
                    &note(&b, "sharing.booking_bumped", Some(&b.booker), message),
                    now,
                )
                .await?;
            }
        }
        Decision::Owner | Decision::Refuse => {}
    }
    Ok(())
}

/// Settles the booking whose transaction `transaction_id` has just been stopped (nothing if it
/// was not a booking's): energy from the meter readings, time from the charger's start and stop
/// timestamps, at the booking's terms.
pub(crate) async fn stopped(
    conn: &mut AnyConnection,
    transaction_id: i64,
    now: Timestamp,
) -> Result<(), sqlx::Error> {
    let id: Option<i64> = sqlx::query_scalar(
        "SELECT id FROM sharing_bookings WHERE transaction_id = $1 AND state = 'active'",
    )
    .bind(transaction_id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(id) = id else {
        return Ok(());
    };
    let Ok(Some(b)) = load_booking(conn, id).await? else {
        return Ok(());
    };
    let row = sqlx::query(
        "SELECT meter_start_wh, meter_stop_wh, started_at_ms, stopped_at_ms FROM transactions \
         WHERE id = $1",
    )
    .bind(transaction_id)
    .fetch_one(&mut *conn)
    .await?;
    let (start_wh, stop_wh, started, stopped): (
        Option<i64>,
        Option<i64>,
        Option<i64>,
        Option<i64>,
    ) = (
        get(&row, "meter_start_wh").unwrap_or(None),
        get(&row, "meter_stop_wh").unwrap_or(None),
        get(&row, "started_at_ms").unwrap_or(None),
        get(&row, "stopped_at_ms").unwrap_or(None),
    );
    let energy = stop_wh
        .zip(start_wh)
        .map_or(0, |(b, a)| b.saturating_sub(a));
    let duration = stopped.zip(started).map_or(0, |(b, a)| b.saturating_sub(a));
    let figures = Figures::session(&b.terms, energy, duration);
    let at = stopped
        .and_then(|t| Timestamp::from_millisecond(t).ok())
        .unwrap_or(now);
    insert_settlement(
        conn,
        &b,
        SettlementKind::Session,
        Some(transaction_id),
        &figures,
        at,
    )
    .await?;
    set_state(conn, id, BookingState::Completed, None, now).await?;
    let _ = emit_booking(conn, id, "sharing.booking_settled", now).await?;
    Ok(())
}

// ----- writer operations ----------------------------------------------------------------------

#[derive(Debug)]
enum SharingOp {
    PutAgreement {
        charger_id: String,
        terms: Terms,
        now: Timestamp,
    },
    AddWindow {
        charger_id: String,
        start: Timestamp,
        end: Timestamp,
        now: Timestamp,
    },
    RemoveWindow {
        id: i64,
        by: String,
        now: Timestamp,
    },
    EndAgreement {
        charger_id: String,
        by: String,
        now: Timestamp,
    },
    Book {
        booking: NewBooking,
        now: Timestamp,
    },
    Cancel {
        id: i64,
        by: String,
        by_booker: bool,
        now: Timestamp,
    },
    Sweep {
        now: Timestamp,
    },
}

impl DynOp for SharingOp {
    fn apply<'c>(
        &'c self,
        conn: &'c mut AnyConnection,
    ) -> Pin<Box<dyn Future<Output = Applied> + Send + 'c>> {
        Box::pin(self.run(conn))
    }
}

/// The charger's owner and community, if it is a privately owned self-use charger (and, with
/// `in_service`, active: windows and bookings are not offered on a charger out of service, so
/// nobody is booked onto one and then charged a no-show fee).
async fn private_charger(
    conn: &mut AnyConnection,
    charger_id: &str,
    in_service: bool,
) -> Result<Result<(String, Option<String>)>, sqlx::Error> {
    let Some(reg) = registry_of(conn, charger_id).await? else {
        return Ok(Err(StoreError::NotFound(format!(
            "charger {charger_id} in the registry"
        ))));
    };
    match reg.owner {
        Some(_) if in_service && reg.kind == "self_use" && reg.lifecycle != "active" => {
            Ok(Err(invalid(
                "charger_id",
                format!("charger {charger_id} is {}, not active", reg.lifecycle),
            )))
        }
        Some(owner) if reg.kind == "self_use" => Ok(Ok((owner, reg.community))),
        _ => Ok(Err(invalid(
            "charger_id",
            format!("charger {charger_id} is not a privately owned self_use charger"),
        ))),
    }
}

/// Withdraws window `w`: Conflict if one of its bookings is active; otherwise its pending
/// bookings are cancelled without fee (the booker told `why`) and the window deleted. The
/// cancelled bookings' ids.
async fn withdraw_window(
    conn: &mut AnyConnection,
    w: &Window,
    by: &str,
    now: Timestamp,
    why: &str,
) -> Result<Result<Vec<i64>>, sqlx::Error> {
    let rows = sqlx::query(AssertSqlSafe(format!(
        "SELECT {BOOKING_COLUMNS} FROM sharing_bookings WHERE window_id = $1 \
         AND state IN ('pending', 'active') ORDER BY id"
    )))
    .bind(w.id)
    .fetch_all(&mut *conn)
    .await?;
    let held = decoded!(rows.iter().map(booking).collect::<Result<Vec<_>>>());
    if let Some(active) = held.iter().find(|b| b.state == BookingState::Active) {
        return Ok(Err(StoreError::Conflict(format!(
            "an active booking ({}) in window {}",
            active.id, w.id
        ))));
    }
    let mut cancelled = Vec::new();
    for b in held {
        set_state(conn, b.id, BookingState::Cancelled, Some(by), now).await?;
        let message = format!(
            "Your booking {} of charger {} from {} to {} is cancelled: {why}; no fee is due.",
            b.id, b.charger_id, b.start, b.end
        );
        enqueue(
            conn,
            &note(&b, "sharing.booking_cancelled", Some(&b.booker), message),
            now,
        )
        .await?;
        after_write(emit_booking(conn, b.id, "sharing.booking_cancelled", now).await?)?;
        cancelled.push(b.id);
    }
    sqlx::query("DELETE FROM sharing_windows WHERE id = $1")
        .bind(w.id)
        .execute(&mut *conn)
        .await?;
    Ok(Ok(cancelled))
}

impl SharingOp {
    async fn run(&self, conn: &mut AnyConnection) -> Applied {
        match self {
            SharingOp::PutAgreement {
                charger_id,
                terms,
                now,
            } => {
                let (_, community) = decoded!(private_charger(conn, charger_id, false).await?);
                decoded!(terms.validate());
                sqlx::query(
                    "INSERT INTO sharing_agreements (charger_id, price_per_kwh_cny, \
                     price_per_hour_cny, owner_share_percent, operator, owner_priority, \
                     no_show_grace_min, no_show_fee_fen, cancel_notice_min, late_cancel_fee_fen, \
                     created_at_ms, updated_at_ms) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11) \
                     ON CONFLICT (charger_id) DO UPDATE SET \
                     price_per_kwh_cny = excluded.price_per_kwh_cny, \
                     price_per_hour_cny = excluded.price_per_hour_cny, \
                     owner_share_percent = excluded.owner_share_percent, \
                     operator = excluded.operator, owner_priority = excluded.owner_priority, \
                     no_show_grace_min = excluded.no_show_grace_min, \
                     no_show_fee_fen = excluded.no_show_fee_fen, \
                     cancel_notice_min = excluded.cancel_notice_min, \
                     late_cancel_fee_fen = excluded.late_cancel_fee_fen, \
                     updated_at_ms = excluded.updated_at_ms",
                )
                .bind(charger_id.as_str())
                .bind(terms.price_per_kwh_cny)
                .bind(terms.price_per_hour_cny)
                .bind(terms.owner_share_percent)
                .bind(terms.operator.as_str())
                .bind(i64::from(terms.owner_priority))
                .bind(terms.no_show_grace_min)
                .bind(terms.no_show_fee_fen)
                .bind(terms.cancel_notice_min)
                .bind(terms.late_cancel_fee_fen)
                .bind(ms(*now))
                .execute(&mut *conn)
                .await?;
                let stored = after_write(load_agreement(conn, charger_id).await?.and_then(|a| {
                    a.ok_or_else(|| StoreError::NotFound(format!("agreement of {charger_id}")))
                }))?;
                emit(
                    conn,
                    *now,
                    "charger.sharing_agreement",
                    Some(charger_id),
                    community.as_deref(),
                    json!(stored),
                )
                .await?;
                boxed(stored)
            }
            SharingOp::AddWindow {
                charger_id,
                start,
                end,
                now,
            } => {
                let (_, community) = decoded!(private_charger(conn, charger_id, true).await?);
                if decoded!(load_agreement(conn, charger_id).await?).is_none() {
                    return Ok(Err(StoreError::NotFound(format!(
                        "sharing agreement of charger {charger_id}"
                    ))));
                }
                decoded!(check_span(*start, *end, *now));
                let clash: Option<i64> = sqlx::query_scalar(
                    "SELECT id FROM sharing_windows WHERE charger_id = $1 AND start_ms < $2 \
                     AND end_ms > $3 ORDER BY start_ms LIMIT 1",
                )
                .bind(charger_id.as_str())
                .bind(ms(*end))
                .bind(ms(*start))
                .fetch_optional(&mut *conn)
                .await?;
                if let Some(other) = clash {
                    return Ok(Err(StoreError::Conflict(format!(
                        "an overlapping availability window (id {other}) of charger {charger_id}"
                    ))));
                }
                let id = take_ids(conn, "sharing_windows", 1).await?;
                sqlx::query(
                    "INSERT INTO sharing_windows (id, charger_id, start_ms, end_ms, created_at_ms) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(id)
                .bind(charger_id.as_str())
                .bind(ms(*start))
                .bind(ms(*end))
                .bind(ms(*now))
                .execute(&mut *conn)
                .await?;
                let stored = Window {
                    id,
                    charger_id: charger_id.clone(),
                    start: *start,
                    end: *end,
                    created_at: *now,
                };
                emit(
                    conn,
                    *now,
                    "sharing.window_added",
                    Some(charger_id),
                    community.as_deref(),
                    json!(stored),
                )
                .await?;
                boxed(stored)
            }
            SharingOp::RemoveWindow { id, by, now } => {
                let w = found!(load_window(conn, *id).await, format!("window {id}"));
                let cancelled = decoded!(
                    withdraw_window(
                        conn,
                        &w,
                        by,
                        *now,
                        "the owner withdrew the availability window"
                    )
                    .await?
                );
                let community = registry_of(conn, &w.charger_id)
                    .await?
                    .and_then(|r| r.community);
                emit(
                    conn,
                    *now,
                    "sharing.window_removed",
                    Some(&w.charger_id),
                    community.as_deref(),
                    json!({ "window": w, "cancelled_bookings": cancelled, "by": by }),
                )
                .await?;
                boxed(cancelled)
            }
            SharingOp::EndAgreement {
                charger_id,
                by,
                now,
            } => {
                let agreement = found!(
                    load_agreement(conn, charger_id).await,
                    format!("sharing agreement of charger {charger_id}")
                );
                let active: Option<i64> = sqlx::query_scalar(
                    "SELECT id FROM sharing_bookings WHERE charger_id = $1 AND state = 'active' \
                     ORDER BY id LIMIT 1",
                )
                .bind(charger_id.as_str())
                .fetch_optional(&mut *conn)
                .await?;
                if let Some(active) = active {
                    return Ok(Err(StoreError::Conflict(format!(
                        "a neighbour is charging on charger {charger_id} (booking {active}); end \
                         sharing after it"
                    ))));
                }
                let ids: Vec<i64> = sqlx::query_scalar(
                    "SELECT id FROM sharing_windows WHERE charger_id = $1 ORDER BY start_ms",
                )
                .bind(charger_id.as_str())
                .fetch_all(&mut *conn)
                .await?;
                let mut cancelled = Vec::new();
                for id in ids {
                    let w = found!(load_window(conn, id).await, format!("window {id}"));
                    cancelled.extend(decoded!(
                        withdraw_window(
                            conn,
                            &w,
                            by,
                            *now,
                            "the owner stopped sharing the charger"
                        )
                        .await?
                    ));
                }
                sqlx::query("DELETE FROM sharing_agreements WHERE charger_id = $1")
                    .bind(charger_id.as_str())
                    .execute(&mut *conn)
                    .await?;
                let community = registry_of(conn, charger_id)
                    .await?
                    .and_then(|r| r.community);
                emit(
                    conn,
                    *now,
                    "charger.sharing_ended",
                    Some(charger_id),
                    community.as_deref(),
                    json!({ "agreement": agreement, "cancelled_bookings": cancelled, "by": by }),
                )
                .await?;
                boxed(cancelled)
            }
            SharingOp::Book { booking: nb, now } => {
                let (owner, community) =
                    decoded!(private_charger(conn, &nb.charger_id, true).await?);
                let Some(agreement) = decoded!(load_agreement(conn, &nb.charger_id).await?) else {
                    return Ok(Err(StoreError::NotFound(format!(
                        "sharing agreement of charger {}",
                        nb.charger_id
                    ))));
                };
                let tag_user: Option<String> =
                    sqlx::query_scalar("SELECT user_id FROM user_id_tags WHERE tag = $1")
                        .bind(nb.id_tag.as_str())
                        .fetch_optional(&mut *conn)
                        .await?;
                if tag_user.as_deref() != Some(nb.booker.as_str()) {
                    return Ok(Err(invalid(
                        "id_tag",
                        format!("{} is not an id tag of {}", nb.id_tag, nb.booker),
                    )));
                }
                if nb.booker == owner {
                    return Ok(Err(invalid(
                        "charger_id",
                        "the owner charges on their own charger without booking it",
                    )));
                }
                decoded!(check_span(nb.start, nb.end, *now));
                let win: Option<i64> = sqlx::query_scalar(
                    "SELECT id FROM sharing_windows WHERE charger_id = $1 AND start_ms <= $2 \
                     AND end_ms >= $3 ORDER BY start_ms LIMIT 1",
                )
                .bind(nb.charger_id.as_str())
                .bind(ms(nb.start))
                .bind(ms(nb.end))
                .fetch_optional(&mut *conn)
                .await?;
                let Some(window_id) = win else {
                    return Ok(Err(invalid(
                        "start",
                        format!(
                            "{} to {} is not inside one availability window of charger {}",
                            nb.start, nb.end, nb.charger_id
                        ),
                    )));
                };
                let clash = sqlx::query(
                    "SELECT id, start_ms, end_ms FROM sharing_bookings WHERE charger_id = $1 \
                     AND state IN ('pending', 'active') AND start_ms < $2 AND end_ms > $3 \
                     ORDER BY start_ms LIMIT 1",
                )
                .bind(nb.charger_id.as_str())
                .bind(ms(nb.end))
                .bind(ms(nb.start))
                .fetch_optional(&mut *conn)
                .await?;
                if let Some(row) = clash {
                    let other: i64 = decoded!(get(&row, "id"));
                    let (s, e) = (decoded!(ts(&row, "start_ms")), decoded!(ts(&row, "end_ms")));
                    return Ok(Err(StoreError::Conflict(format!(
                        "an overlapping booking (id {other}, {s} to {e}) of charger {}",
                        nb.charger_id
                    ))));
                }
                let id = take_ids(conn, "sharing_bookings", 1).await?;
                sqlx::query(
                    "INSERT INTO sharing_bookings (id, window_id, charger_id, owner_user_id, \
                     community_id, booker, id_tag, start_ms, end_ms, state, terms, \
                     created_at_ms, updated_at_ms) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'pending', $10, $11, $11)",
                )
                .bind(id)
                .bind(window_id)
                .bind(nb.charger_id.as_str())
                .bind(owner.as_str())
                .bind(community.as_deref())
                .bind(nb.booker.as_str())
                .bind(nb.id_tag.as_str())
                .bind(ms(nb.start))
                .bind(ms(nb.end))
                .bind(json!(agreement.terms).to_string())
                .bind(ms(*now))
                .execute(&mut *conn)
                .await?;
                let b =
                    after_write(emit_booking(conn, id, "sharing.booking_created", *now).await?)?;
                boxed(b)
            }
            SharingOp::Cancel {
                id,
                by,
                by_booker,
                now,
            } => {
                let b = found!(load_booking(conn, *id).await, format!("booking {id}"));
                if b.state != BookingState::Pending {
                    // Conflict reads "… already exists": only pending bookings are cancelled.
                    return Ok(Err(StoreError::Conflict(format!(
                        "booking {id} is {}, not pending: a later state",
                        b.state.as_str()
                    ))));
                }
                set_state(conn, *id, BookingState::Cancelled, Some(by), *now).await?;
                let notice = SignedDuration::from_mins(b.terms.cancel_notice_min);
                let late = *by_booker && b.start.duration_since(*now) < notice;
                if late {
                    let figures = Figures::fee(&b.terms, b.terms.late_cancel_fee_fen);
                    insert_settlement(conn, &b, SettlementKind::LateCancel, None, &figures, *now)
                        .await?;
                }
                let (recipient, message) = if *by_booker {
                    (
                        b.owner.clone(),
                        format!(
                            "Booking {} of your charger {} from {} was cancelled by {}{}.",
                            b.id,
                            b.charger_id,
                            b.start,
                            b.booker,
                            if late {
                                " (late: the cancellation fee is settled)"
                            } else {
                                ""
                            }
                        ),
                    )
                } else {
                    (
                        Some(b.booker.clone()),
                        format!(
                            "Your booking {} of charger {} from {} to {} was cancelled by {by}; \
                             no fee is due.",
                            b.id, b.charger_id, b.start, b.end
                        ),
                    )
                };
                enqueue(
                    conn,
                    &note(
                        &b,
                        "sharing.booking_cancelled",
                        recipient.as_deref(),
                        message,
                    ),
                    *now,
                )
                .await?;
                let b =
                    after_write(emit_booking(conn, *id, "sharing.booking_cancelled", *now).await?)?;
                boxed(b)
            }
            SharingOp::Sweep { now } => {
                let rows = sqlx::query(AssertSqlSafe(format!(
                    "SELECT {BOOKING_COLUMNS} FROM sharing_bookings WHERE state = 'pending' \
                     AND start_ms <= $1 ORDER BY start_ms, id"
                )))
                .bind(ms(*now))
                .fetch_all(&mut *conn)
                .await?;
                let mut marked = Vec::new();
                for row in &rows {
                    // A row that does not decode is left for an operator; the rest proceed.
                    let Ok(b) = booking(row) else { continue };
                    let grace = SignedDuration::from_mins(b.terms.no_show_grace_min);
                    let due = b.start.checked_add(grace).unwrap_or(b.end).min(b.end);
                    if *now < due {
                        continue;
                    }
                    // The charger was taken out of service after the booking was made: the
                    // neighbour could not have charged, so no fee; they are told instead.
                    let lifecycle = registry_of(conn, &b.charger_id).await?.map(|r| r.lifecycle);
                    if lifecycle.as_deref() != Some("active") {
                        let state = lifecycle.unwrap_or_else(|| "not registered".into());
                        set_state(conn, b.id, BookingState::Cancelled, Some("system"), *now)
                            .await?;
                        let message = format!(
                            "Your booking {} of charger {} from {} is cancelled: the charger is \
                             {state}; no fee is due.",
                            b.id, b.charger_id, b.start
                        );
                        enqueue(
                            conn,
                            &note(&b, "sharing.booking_cancelled", Some(&b.booker), message),
                            *now,
                        )
                        .await?;
                        let _ = emit_booking(conn, b.id, "sharing.booking_cancelled", *now).await?;
                        continue;
                    }
                    set_state(conn, b.id, BookingState::NoShow, None, *now).await?;
                    let figures = Figures::fee(&b.terms, b.terms.no_show_fee_fen);
                    insert_settlement(conn, &b, SettlementKind::NoShow, None, &figures, due)
                        .await?;
                    let fee = format!("{}.{:02}", figures.total_fen / 100, figures.total_fen % 100);
                    let to_owner = format!(
                        "Booking {} of your charger {} from {} was not used by {} within the \
                         grace period: marked no-show, fee {fee} CNY settled.",
                        b.id, b.charger_id, b.start, b.booker
                    );
                    enqueue(
                        conn,
                        &note(&b, "sharing.no_show", b.owner.as_deref(), to_owner),
                        *now,
                    )
                    .await?;
                    let to_booker = format!(
                        "Your booking {} of charger {} from {} was not used within the grace \
                         period: marked no-show, fee {fee} CNY.",
                        b.id, b.charger_id, b.start
                    );
                    enqueue(
                        conn,
                        &note(&b, "sharing.no_show", Some(&b.booker), to_booker),
                        *now,
                    )
                    .await?;
                    let _ = emit_booking(conn, b.id, "sharing.booking_no_show", *now).await?;
                    marked.push(b.id);
                }
                boxed(marked)
            }
        }
    }
}

/// A window or booking: end after start, not starting in the past, at most [`MAX_SPAN`] long.
fn check_span(start: Timestamp, end: Timestamp, now: Timestamp) -> Result<()> {
    if end <= start {
        return Err(invalid("end", "must be after start"));
    }
    if start < now {
        return Err(invalid(
            "start",
            format!("{start} is in the past (now {now})"),
        ));
    }
    if end.duration_since(start) > MAX_SPAN {
        return Err(invalid("end", "at most 31 days after start"));
    }
    Ok(())
}

async fn load_window(
    conn: &mut AnyConnection,
    id: i64,
) -> Result<Result<Option<Window>>, sqlx::Error> {
    let row = sqlx::query(AssertSqlSafe(format!(
        "SELECT {WINDOW_COLUMNS} FROM sharing_windows WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.as_ref().map(window).transpose())
}

// ----- the Store API --------------------------------------------------------------------------

impl Store {
    /// Sets (creates or replaces) the sharing agreement of a privately owned charger. NotFound
    /// (charger not in the registry), Invalid (not a privately owned self_use charger; a term).
    /// Bookings already made keep the terms they were made under.
    pub async fn put_sharing_agreement(
        &self,
        charger_id: &str,
        terms: Terms,
        now: Timestamp,
    ) -> Result<Agreement> {
        self.write_boxed(SharingOp::PutAgreement {
            charger_id: charger_id.to_owned(),
            terms,
            now,
        })
        .await
    }

    pub async fn sharing_agreement(&self, charger_id: &str) -> Result<Option<Agreement>> {
        let mut conn = self.pool().acquire().await?;
        load_agreement(&mut conn, charger_id).await?
    }

    /// Publishes an availability window. NotFound (no agreement), Invalid (end, start), Conflict
    /// (overlaps another window of the charger).
    pub async fn add_sharing_window(
        &self,
        charger_id: &str,
        start: Timestamp,
        end: Timestamp,
        now: Timestamp,
    ) -> Result<Window> {
        self.write_boxed(SharingOp::AddWindow {
            charger_id: charger_id.to_owned(),
            start,
            end,
            now,
        })
        .await
    }

    pub async fn get_sharing_window(&self, id: i64) -> Result<Option<Window>> {
        let mut conn = self.pool().acquire().await?;
        load_window(&mut conn, id).await?
    }

    /// Withdraws a window: Conflict if one of its bookings is active; its pending bookings are
    /// cancelled and their bookers told. Returns the cancelled bookings' ids.
    pub async fn remove_sharing_window(
        &self,
        id: i64,
        by: &str,
        now: Timestamp,
    ) -> Result<Vec<i64>> {
        self.write_boxed(SharingOp::RemoveWindow {
            id,
            by: by.to_owned(),
            now,
        })
        .await
    }

    /// Ends sharing on a charger: Conflict while a neighbour is charging on it; otherwise every
    /// window is withdrawn (pending bookings cancelled without fee, bookers told) and the
    /// agreement deleted, in one commit. Past bookings and settlements stay. Returns the
    /// cancelled bookings' ids.
    pub async fn end_sharing_agreement(
        &self,
        charger_id: &str,
        by: &str,
        now: Timestamp,
    ) -> Result<Vec<i64>> {
        self.write_boxed(SharingOp::EndAgreement {
            charger_id: charger_id.to_owned(),
            by: by.to_owned(),
            now,
        })
        .await
    }

    /// A charger's windows ending after `after`, by start.
    pub async fn list_sharing_windows(
        &self,
        charger_id: &str,
        after: Timestamp,
    ) -> Result<Vec<Window>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {WINDOW_COLUMNS} FROM sharing_windows WHERE charger_id = $1 AND end_ms > $2 \
             ORDER BY start_ms"
        )))
        .bind(charger_id)
        .bind(ms(after))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(window).collect()
    }

    /// Open windows of a community's shared chargers (ending after `now`) with their free
    /// parts from `now` on.
    pub async fn sharing_offers(&self, community_id: &str, now: Timestamp) -> Result<Vec<Offer>> {
        let mut conn = self.pool().acquire().await?;
        let rows = sqlx::query(
            "SELECT w.id, w.charger_id, w.start_ms, w.end_ms, w.created_at_ms, r.owner_user_id \
             FROM sharing_windows w JOIN charger_registry r ON r.charger_id = w.charger_id \
             WHERE r.community_id = $1 AND r.kind = 'self_use' AND w.end_ms > $2 \
             ORDER BY w.start_ms, w.id",
        )
        .bind(community_id)
        .bind(ms(now))
        .fetch_all(&mut *conn)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let w = window(row)?;
            let owner: Option<String> = get(row, "owner_user_id")?;
            let Some(agreement) = load_agreement(&mut conn, &w.charger_id).await?? else {
                continue;
            };
            let taken = sqlx::query(
                "SELECT start_ms, end_ms FROM sharing_bookings WHERE window_id = $1 \
                 AND state IN ('pending', 'active')",
            )
            .bind(w.id)
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .map(|r| Ok((ts(r, "start_ms")?, ts(r, "end_ms")?)))
            .collect::<Result<Vec<_>>>()?;
            let free = free_parts((w.start, w.end), &taken, now);
            out.push(Offer {
                window: w,
                community_id: Some(community_id.to_owned()),
                owner,
                terms: agreement.terms,
                free,
            });
        }
        Ok(out)
    }

    /// Books a window for a neighbour. NotFound (charger, agreement), Invalid (id_tag not the
    /// booker's, the owner booking, start/end, outside every window), Conflict (overlaps a
    /// pending or active booking, named).
    pub async fn book_sharing(&self, booking: NewBooking, now: Timestamp) -> Result<Booking> {
        self.write_boxed(SharingOp::Book { booking, now }).await
    }

    pub async fn get_sharing_booking(&self, id: i64) -> Result<Option<Booking>> {
        let mut conn = self.pool().acquire().await?;
        load_booking(&mut conn, id).await?
    }

    /// Bookings matching `filter`, newest first, with their settlements.
    pub async fn list_sharing_bookings(&self, filter: &BookingFilter) -> Result<Vec<Booking>> {
        let mut sql = "SELECT id FROM sharing_bookings WHERE 1 = 1".to_owned();
        let mut binds: Vec<&str> = Vec::new();
        for (col, v) in [
            ("booker", &filter.booker),
            ("owner_user_id", &filter.owner),
            ("charger_id", &filter.charger_id),
            ("community_id", &filter.community_id),
        ] {
            if let Some(v) = v {
                binds.push(v);
                sql.push_str(&format!(" AND {col} = ${}", binds.len()));
            }
        }
        sql.push_str(" ORDER BY start_ms DESC, id DESC LIMIT 1000");
        let mut conn = self.pool().acquire().await?;
        let mut q = sqlx::query_scalar::<_, i64>(AssertSqlSafe(sql));
        for b in binds {
            q = q.bind(b);
        }
        let ids = q.fetch_all(&mut *conn).await?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(b) = load_booking(&mut conn, id).await?? {
                out.push(b);
            }
        }
        Ok(out)
    }

    /// Cancels a pending booking. By its booker: free until the agreement's notice before the
    /// start, else the late-cancellation fee is settled and the owner told. By anyone else (the
    /// owner, an operator): free, the booker told. Conflict if it is not pending.
    pub async fn cancel_sharing_booking(
        &self,
        id: i64,
        by: &str,
        by_booker: bool,
        now: Timestamp,
    ) -> Result<Booking> {
        self.write_boxed(SharingOp::Cancel {
            id,
            by: by.to_owned(),
            by_booker,
            now,
        })
        .await
    }

    /// Marks pending bookings not started within their grace as no-shows, settling the fee and
    /// telling owner and booker; on a charger no longer active they are cancelled without fee
    /// instead (the booker told). Returns the bookings marked no-show.
    pub async fn sweep_sharing(&self, now: Timestamp) -> Result<Vec<i64>> {
        self.write_boxed(SharingOp::Sweep { now }).await
    }

    /// Settlements of `owner`'s chargers (as recorded: the owner when settled) with `from <= at
    /// < to`, oldest first.
    pub async fn sharing_settlements(
        &self,
        owner: &str,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<Settlement>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {SETTLEMENT_COLUMNS} FROM sharing_settlements WHERE owner_user_id = $1 \
             AND at_ms >= $2 AND at_ms < $3 ORDER BY at_ms, id"
        )))
        .bind(owner)
        .bind(ms(from))
        .bind(ms(to))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(settlement).collect()
    }

    /// The Authorize answer for `tag` at `charger`: the tag's own status, then, on a privately
    /// owned self-use charger, the sharing rule ([`decide`]): Invalid unless the tag is the
    /// owner's or holds a booking covering `now`.
    pub async fn authorize_at(
        &self,
        charger_id: &orderly_core::ChargePointId,
        tag: &orderly_core::IdTag,
        now: Timestamp,
    ) -> Result<crate::IdTagInfo> {
        let mut conn = self.pool().acquire().await?;
        let mut info = crate::rows::authorize(&mut conn, tag, now).await??;
        if info.status == crate::AuthorizationStatus::Accepted
            && let Some(Decision::Refuse) = gate(
                &mut conn,
                charger_id.as_str(),
                tag.as_str(),
                now,
                Purpose::Authorize,
            )
            .await?
        {
            info.status = crate::AuthorizationStatus::Invalid;
        }
        Ok(info)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terms(priority: bool) -> Terms {
        Terms {
            price_per_kwh_cny: 1.2,
            price_per_hour_cny: Some(0.5),
            owner_share_percent: 70.0,
            operator: "GridCo".into(),
            owner_priority: priority,
            no_show_grace_min: 15,
            no_show_fee_fen: 500,
            cancel_notice_min: 60,
            late_cancel_fee_fen: 300,
        }
    }

    #[test]
    fn session_figures_round_to_the_fen_and_shares_add_up() {
        // 7.25 kWh × 1.2 = 8.70; 1 h 30 min × 0.5 = 0.75; total 9.45; 70 % = 6.615 → 6.62.
        let f = Figures::session(&terms(true), 7_250, 90 * 60_000);
        assert_eq!(
            (f.energy_fee_fen, f.time_fee_fen, f.total_fen),
            (870, 75, 945)
        );
        assert_eq!((f.owner_share_fen, f.operator_share_fen), (662, 283));
        // Shares always add up, whatever the percentage.
        for pct in [0.0, 33.3, 50.0, 66.67, 99.99, 100.0] {
            let t = Terms {
                owner_share_percent: pct,
                ..terms(true)
            };
            for wh in [0, 1, 333, 12_345, 99_999] {
                let f = Figures::session(&t, wh, 4_321_000);
                assert_eq!(f.owner_share_fen + f.operator_share_fen, f.total_fen);
                assert_eq!(f.energy_fee_fen + f.time_fee_fen, f.total_fen);
                assert!(f.owner_share_fen >= 0 && f.operator_share_fen >= 0);
            }
        }
        // No price per hour: no time fee; negative readings (a meter swap) charge nothing.
        let t = Terms {
            price_per_hour_cny: None,
            ..terms(true)
        };
        assert_eq!(Figures::session(&t, 1_000, 3_600_000).time_fee_fen, 0);
        assert_eq!(Figures::session(&t, -5, -5).total_fen, 0);
        // Absurd meter readings saturate instead of overflowing.
        let absurd = Figures::session(&terms(true), i64::MAX, i64::MAX);
        assert_eq!(
            absurd.owner_share_fen + absurd.operator_share_fen,
            absurd.total_fen
        );
        let fee = Figures::fee(&terms(true), 500);
        assert_eq!(
            (fee.total_fen, fee.owner_share_fen, fee.operator_share_fen),
            (500, 350, 150)
        );
    }

    #[test]
    fn validation_names_the_field() {
        let bad = [
            (
                Terms {
                    price_per_kwh_cny: -1.0,
                    ..terms(true)
                },
                "price_per_kwh_cny",
            ),
            (
                Terms {
                    price_per_hour_cny: Some(f64::NAN),
                    ..terms(true)
                },
                "price_per_hour_cny",
            ),
            (
                Terms {
                    owner_share_percent: 100.5,
                    ..terms(true)
                },
                "owner_share_percent",
            ),
            (
                Terms {
                    operator: " ".into(),
                    ..terms(true)
                },
                "operator",
            ),
            (
                Terms {
                    no_show_grace_min: -1,
                    ..terms(true)
                },
                "no_show_grace_min",
            ),
            (
                Terms {
                    late_cancel_fee_fen: -1,
                    ..terms(true)
                },
                "late_cancel_fee_cny",
            ),
        ];
        for (t, field) in bad {
            match t.validate() {
                Err(StoreError::Invalid { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{field}: {other:?}"),
            }
        }
        assert!(terms(false).validate().is_ok());
    }

    #[test]
    fn the_sharing_rule() {
        let pending = |priority| CurrentBooking {
            id: 7,
            booker: "nina".into(),
            id_tag: "NINA".into(),
            started: false,
            owner_priority: priority,
        };
        let start = Purpose::StartTransaction;
        let auth = Purpose::Authorize;
        // The owner, nobody booked: accepted.
        assert_eq!(
            decide("olga", Some("olga"), "OLGA", None, start),
            Decision::Owner
        );
        // A stranger, or a neighbour without a booking now: refused.
        assert_eq!(
            decide("olga", Some("sam"), "SAM", None, auth),
            Decision::Refuse
        );
        assert_eq!(decide("olga", None, "NINA", None, auth), Decision::Refuse);
        // The booking's tag during its booking.
        let b = pending(false);
        assert_eq!(
            decide("olga", Some("nina"), "NINA", Some(&b), start),
            Decision::Booking { booking: 7 }
        );
        // Another tag of someone else during it: refused.
        assert_eq!(
            decide("olga", Some("sam"), "SAM", Some(&b), auth),
            Decision::Refuse
        );
        // Without priority the owner waits.
        assert_eq!(
            decide("olga", Some("olga"), "OLGA", Some(&b), start),
            Decision::Refuse
        );
        // With priority the owner bumps a booking that has not started...
        let p = pending(true);
        assert_eq!(
            decide("olga", Some("olga"), "OLGA", Some(&p), auth),
            Decision::Owner
        );
        assert_eq!(
            decide("olga", Some("olga"), "OLGA", Some(&p), start),
            Decision::OwnerBumps { booking: 7 }
        );
        // ...but never a neighbour who is charging.
        let started = CurrentBooking {
            started: true,
            ..pending(true)
        };
        assert_eq!(
            decide("olga", Some("olga"), "OLGA", Some(&started), start),
            Decision::Refuse
        );
        // A started booking authorizes its tag, but does not start a second transaction.
        assert_eq!(
            decide("olga", Some("nina"), "NINA", Some(&started), auth),
            Decision::Booking { booking: 7 }
        );
        assert_eq!(
            decide("olga", Some("nina"), "NINA", Some(&started), start),
            Decision::Refuse
        );
    }

    #[test]
    fn free_parts_of_a_window() {
        let t = |m: i64| Timestamp::from_second(1_800_000_000 + m * 60).unwrap();
        let w = (t(0), t(240));
        assert_eq!(free_parts(w, &[], t(0)), vec![(t(0), t(240))]);
        assert_eq!(
            free_parts(w, &[(t(60), t(120)), (t(180), t(240))], t(0)),
            vec![(t(0), t(60)), (t(120), t(180))]
        );
        assert_eq!(
            free_parts(w, &[(t(0), t(60))], t(90)),
            vec![(t(90), t(240))]
        );
        assert!(free_parts(w, &[(t(0), t(240))], t(0)).is_empty());
    }
}
