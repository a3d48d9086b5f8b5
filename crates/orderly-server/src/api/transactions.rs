//! `/api/v1/transactions`: charging transactions and their meter values. A transaction belongs
//! to the user holding its id tag, in its charger's community ([`Belonging`]): residents see
//! their own, a community's staff its chargers', admins and regulators all.

use super::auth::{Belonging, Permission, Principal};
use super::chargers::parse_id;
use super::dto::{MeterValueDto, TransactionDto};
use super::error::{ApiError, ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;
use axum::extract::State;
use orderly_store::{TransactionFilter, TransactionId};
use serde::Deserialize;
use utoipa::IntoParams;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TransactionQuery {
    /// Only this charger's transactions.
    pub charger_id: Option<String>,
    /// `true`: only running; `false`: only stopped.
    pub active: Option<bool>,
    /// At most this many, newest first (default 1000, max 10000).
    pub limit: Option<u32>,
}

/// Transactions the caller may see, newest first (`limit` applies before that filter).
#[utoipa::path(get, path = "/api/v1/transactions", tag = "transactions",
    security(("bearer" = [])),
    params(TransactionQuery),
    responses((status = 200, body = Vec<TransactionDto>), (status = 400, body = super::error::ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(query): ApiQuery<TransactionQuery>,
) -> Result<ApiJson<Vec<TransactionDto>>, ApiError> {
    let limit = query.limit.unwrap_or(1000);
    if limit == 0 || limit > 10_000 {
        return Err(ApiError::bad_request("limit: must be between 1 and 10000"));
    }
    let filter = TransactionFilter {
        charger_id: query
            .charger_id
            .map(|c| parse_id(c, "charger_id"))
            .transpose()?,
        active: query.active,
        limit: Some(limit),
    };
    let mut transactions = state.store().list_transactions(&filter).await?;
    if !principal.permits(Permission::ReadAll) {
        let mut visible = Vec::with_capacity(transactions.len());
        for t in transactions {
            let belonging = Belonging::of_transaction(&state, &t).await?;
            if principal.permits(Permission::ReadOwn(belonging.owned())) {
                visible.push(t);
            }
        }
        transactions = visible;
    }
    Ok(ApiJson(transactions.into_iter().map(Into::into).collect()))
}

/// One transaction.
#[utoipa::path(get, path = "/api/v1/transactions/{id}", tag = "transactions",
    security(("bearer" = [])),
    params(("id" = i32, Path, description = "OCPP transactionId")),
    responses((status = 200, body = TransactionDto), (status = 404, body = super::error::ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<i32>,
) -> Result<ApiJson<TransactionDto>, ApiError> {
    let transaction = state
        .store()
        .get_transaction(TransactionId(id))
        .await?
        .ok_or_else(|| ApiError::not_found(format!("transaction {id} not found")))?;
    let belonging = Belonging::of_transaction(&state, &transaction).await?;
    principal.require(Permission::ReadOwn(belonging.owned()))?;
    Ok(ApiJson(transaction.into()))
}

/// Meter values of a transaction (including StopTransaction's transactionData), in time order.
#[utoipa::path(get, path = "/api/v1/transactions/{id}/meter-values", tag = "transactions",
    security(("bearer" = [])),
    params(("id" = i32, Path, description = "OCPP transactionId")),
    responses((status = 200, body = Vec<MeterValueDto>), (status = 404, body = super::error::ErrorBody)))]
pub async fn meter_values(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<i32>,
) -> Result<ApiJson<Vec<MeterValueDto>>, ApiError> {
    let store = state.store();
    let transaction = store
        .get_transaction(TransactionId(id))
        .await?
        .ok_or_else(|| ApiError::not_found(format!("transaction {id} not found")))?;
    let belonging = Belonging::of_transaction(&state, &transaction).await?;
    principal.require(Permission::ReadOwn(belonging.owned()))?;
    let samples = store.transaction_meter_values(TransactionId(id)).await?;
    Ok(ApiJson(samples.into_iter().map(Into::into).collect()))
}
