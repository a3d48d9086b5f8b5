//! The storage subcommands of the CLI (`orderly charger …`, `orderly id-tag …`): same store, same
//! rules and same audit log as the API, for shell scripts.

use crate::cli::{ChargerCommand, IdTagCommand, StorageArgs, TagStatus};
use crate::config::Config;
use anyhow::Context;
use jiff::Timestamp;
use orderly_core::{ChargePointId, IdTag};
use orderly_store::{
    AuthorizationStatus, IdTagRecord, NewAuditEntry, NewCharger, Registration, Store,
};
use std::io::Write;

async fn open(storage: &StorageArgs) -> anyhow::Result<Store> {
    let config = Config::load(&storage.overrides())?;
    Ok(crate::open_store(&config).await?)
}

async fn audit(
    store: &Store,
    action: &str,
    target: &str,
    request: serde_json::Value,
    outcome: &str,
) {
    let entry = NewAuditEntry {
        at: Timestamp::now(),
        actor: "cli".to_owned(),
        action: action.to_owned(),
        target: Some(target.to_owned()),
        request,
        outcome: outcome.to_owned(),
    };
    if let Err(error) = store.append_audit(entry).await {
        tracing::error!(%error, "could not record the command in the audit log");
    }
}

/// Run `orderly charger …`, writing results to `out`.
pub async fn charger(command: ChargerCommand, out: &mut impl Write) -> anyhow::Result<()> {
    match command {
        ChargerCommand::Add {
            id,
            password,
            description,
            storage,
        } => {
            let cp = ChargePointId::parse(id.clone())?;
            anyhow::ensure!(
                password.as_deref().is_none_or(|p| !p.is_empty()),
                "--password must not be empty (omit it for none)"
            );
            let store = open(&storage).await?;
            let request = serde_json::json!({
                "id": id, "password_set": password.is_some(), "description": description,
            });
            let new = NewCharger {
                id: cp,
                password,
                description,
            };
            let result = store.register_charger(new, Timestamp::now()).await;
            let outcome = match &result {
                Ok(_) => "ok".to_owned(),
                Err(e) => e.to_string(),
            };
            audit(&store, "charger.add", &id, request, &outcome).await;
            store.close().await;
            match result.with_context(|| format!("cannot add charger {id}"))? {
                Registration::Created => writeln!(out, "charger {id} added")?,
                Registration::PromotedFromPending => {
                    writeln!(out, "charger {id} registered (was pending)")?
                }
            }
        }
        ChargerCommand::List { storage } => {
            let store = open(&storage).await?;
            let chargers = store.list_chargers().await;
            store.close().await;
            for charger in chargers? {
                writeln!(out, "{}", serde_json::to_string(&charger)?)?;
            }
        }
        ChargerCommand::Remove { id, storage } => {
            let cp = ChargePointId::parse(id.clone())?;
            let store = open(&storage).await?;
            let result = store.remove_charger(&cp).await;
            let outcome = match &result {
                Ok(true) => "ok".to_owned(),
                Ok(false) => "not found".to_owned(),
                Err(e) => e.to_string(),
            };
            audit(
                &store,
                "charger.remove",
                &id,
                serde_json::json!({ "id": id }),
                &outcome,
            )
            .await;
            store.close().await;
            anyhow::ensure!(result?, "charger {id} not found");
            writeln!(out, "charger {id} removed")?;
        }
    }
    Ok(())
}

/// Run `orderly id-tag …`, writing results to `out`.
pub async fn id_tag(command: IdTagCommand, out: &mut impl Write) -> anyhow::Result<()> {
    match command {
        IdTagCommand::Add {
            tag,
            status,
            expiry,
            parent,
            storage,
        } => {
            let record = IdTagRecord {
                id_tag: IdTag::parse(tag.clone())?,
                status: match status {
                    TagStatus::Accepted => AuthorizationStatus::Accepted,
                    TagStatus::Blocked => AuthorizationStatus::Blocked,
                    TagStatus::Expired => AuthorizationStatus::Expired,
                    TagStatus::Invalid => AuthorizationStatus::Invalid,
                },
                expiry_date: expiry,
                parent_id_tag: parent.map(IdTag::parse).transpose()?,
            };
            let store = open(&storage).await?;
            let request = serde_json::json!({
                "id_tag": tag, "status": record.status, "expiry_date": expiry,
                "parent_id_tag": record.parent_id_tag,
            });
            // `add` on the CLI means "make it so": create or update.
            let result = store.put_id_tag(record, Timestamp::now()).await;
            let outcome = match &result {
                Ok(_) => "ok".to_owned(),
                Err(e) => e.to_string(),
            };
            audit(&store, "id_tag.put", &tag, request, &outcome).await;
            store.close().await;
            result.with_context(|| format!("cannot add id tag {tag}"))?;
            writeln!(out, "id tag {tag} saved")?;
        }
        IdTagCommand::List { storage } => {
            let store = open(&storage).await?;
            let tags = store.list_id_tags().await;
            store.close().await;
            for tag in tags? {
                writeln!(out, "{}", serde_json::to_string(&tag)?)?;
            }
        }
    }
    Ok(())
}
