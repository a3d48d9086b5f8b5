//! `GET /api/v1/notifications`: what the service told people (the outbox the dispatcher in
//! [`crate::notify`] delivers), with its delivery state. A user reads the notifications meant
//! for them; staff read a community's; admins and regulators read all.

use super::auth::{Permission, Principal};
use super::error::{ApiError, ApiJson, ApiQuery};
use crate::state::AppState;
use axum::extract::State;
use jiff::Timestamp;
use orderly_store::{Notification, NotificationFilter};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Serialize, ToSchema)]
pub struct NotificationDto {
    pub id: i64,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    /// What happened, dotted: `parking.overstay`, `waiting_list.offer`, `insurance.expiring`, ...
    pub kind: String,
    /// The user it is for; null: the community's staff.
    pub recipient: Option<String>,
    pub community_id: Option<String>,
    pub charger_id: Option<String>,
    pub bay_id: Option<i64>,
    pub message: String,
    #[schema(value_type = Object)]
    pub data: Value,
    /// When every notifier took it; null while pending.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub delivered_at: Option<Timestamp>,
    pub attempts: i64,
    pub last_error: Option<String>,
}

impl From<Notification> for NotificationDto {
    fn from(n: Notification) -> Self {
        Self {
            id: n.id,
            created_at: n.created_at,
            kind: n.notification.kind,
            recipient: n.notification.recipient,
            community_id: n.notification.community_id,
            charger_id: n.notification.charger_id,
            bay_id: n.notification.bay_id,
            message: n.notification.message,
            data: n.notification.data,
            delivered_at: n.delivered_at,
            attempts: n.attempts,
            last_error: n.last_error,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct NotificationsQuery {
    /// A community's notifications (staff in scope, admins, regulators). Without it: admins
    /// and regulators get all, everyone else their own.
    pub community: Option<String>,
    /// Only notifications with a larger id (the last id seen; default 0).
    pub after: Option<i64>,
    /// At most this many (default 100, max 1000).
    pub limit: Option<u32>,
}

/// Notifications, oldest first: your own, a community's (staff), or all (admins, regulators).
#[utoipa::path(get, path = "/api/v1/notifications", tag = "notifications",
    security(("bearer" = [])),
    params(NotificationsQuery),
    responses((status = 200, body = Vec<NotificationDto>), (status = 400, body = super::error::ErrorBody),
        (status = 403, body = super::error::ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(query): ApiQuery<NotificationsQuery>,
) -> Result<ApiJson<Vec<NotificationDto>>, ApiError> {
    let limit = query.limit.unwrap_or(100);
    if limit == 0 || limit > 1000 {
        return Err(ApiError::bad_request("limit: must be between 1 and 1000"));
    }
    let after = query.after.unwrap_or(0);
    if after < 0 {
        return Err(ApiError::bad_request("after: must be 0 or more"));
    }
    let mut filter = NotificationFilter {
        after,
        limit,
        ..Default::default()
    };
    match query.community {
        Some(c) => {
            principal.require(Permission::ReadCommunity(&c))?;
            filter.community_id = Some(c);
        }
        None if principal.permits(Permission::ReadAll) => {}
        None => match &principal.user {
            Some(user) => filter.recipient = Some(user.clone()),
            // An admin token is covered by ReadAll above; nothing else lacks a user.
            None => principal.require(Permission::ReadAll)?,
        },
    }
    let found = state.store().list_notifications(&filter).await?;
    Ok(ApiJson(found.into_iter().map(Into::into).collect()))
}
