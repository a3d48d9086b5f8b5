//! The storage subcommands of the CLI (`orderly charger …`, `orderly id-tag …`): same store, same
//! rules and same audit log as the API, for shell scripts.

use crate::cli::{ChargerCommand, IdTagCommand, StorageArgs, TagStatus};
use crate::config::Config;
use anyhow::Context;
use futures_util::StreamExt;
use jiff::Timestamp;
use orderly_core::{ChargePointId, IdTag};
use orderly_store::{
    AuthorizationStatus, IdTagRecord, NewAuditEntry, NewCharger, Registration, Store,
};
use std::io::Write;

/// A printf-style id pattern with at most one `%d`, `%Nd` or `%0Nd` (and `%%` for a percent).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pattern {
    prefix: String,
    suffix: String,
    /// (width, zero padded), when the pattern has a number.
    number: Option<(usize, bool)>,
}

impl Pattern {
    fn parse(text: &str) -> anyhow::Result<Self> {
        let (mut prefix, mut suffix, mut number) = (String::new(), String::new(), None);
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            let out = if number.is_some() {
                &mut suffix
            } else {
                &mut prefix
            };
            if c != '%' {
                out.push(c);
                continue;
            }
            if chars.next_if_eq(&'%').is_some() {
                out.push('%');
                continue;
            }
            let zero = chars.next_if_eq(&'0').is_some();
            let mut width = 0usize;
            while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
                chars.next();
                width = width.saturating_mul(10).saturating_add(d as usize);
            }
            anyhow::ensure!(
                chars.next() == Some('d'),
                "pattern {text:?}: only %d, %Nd, %0Nd and %% are supported"
            );
            anyhow::ensure!(number.is_none(), "pattern {text:?} has more than one %d");
            number = Some((width, zero));
        }
        Ok(Self {
            prefix,
            suffix,
            number,
        })
    }

    fn render(&self, n: u64) -> String {
        let number = match self.number {
            Some((width, true)) => format!("{n:0width$}"),
            Some((width, false)) => format!("{n:width$}"),
            None => String::new(),
        };
        format!("{}{number}{}", self.prefix, self.suffix)
    }
}

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
        ChargerCommand::AddBulk {
            pattern,
            first,
            count,
            password,
            storage,
        } => {
            let ids = Pattern::parse(&pattern)?;
            let passwords = password.as_deref().map(Pattern::parse).transpose()?;
            let mut chargers = Vec::with_capacity(usize::try_from(count)?);
            for n in first..first.saturating_add(count) {
                chargers.push(NewCharger {
                    id: ChargePointId::parse(ids.render(n))?,
                    password: passwords.as_ref().map(|p| p.render(n)),
                    description: None,
                });
            }
            let store = open(&storage).await?;
            // Several at a time: password hashing runs on the blocking pool, and writes are
            // group-committed, so concurrency turns N round trips into a few batches.
            let now = Timestamp::now();
            let results: Vec<_> = futures_util::stream::iter(chargers)
                .map(|c| store.register_charger(c, now))
                .buffer_unordered(64)
                .collect()
                .await;
            let added = results.iter().filter(|r| r.is_ok()).count();
            let request = serde_json::json!({
                "pattern": pattern, "first": first, "count": count,
                "password_set": password.is_some(),
            });
            let outcome = format!("{added} of {count} added");
            audit(&store, "charger.add_bulk", &pattern, request, &outcome).await;
            store.close().await;
            if let Some(error) = results.into_iter().find_map(Result::err) {
                anyhow::bail!("{outcome}; first failure: {error}");
            }
            writeln!(out, "{outcome}")?;
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

#[cfg(test)]
mod tests {
    use super::Pattern;

    #[test]
    fn patterns_render_like_printf() {
        assert_eq!(Pattern::parse("LG%05d").unwrap().render(42), "LG00042");
        assert_eq!(Pattern::parse("cp-%d-x").unwrap().render(7), "cp-7-x");
        assert_eq!(Pattern::parse("%3d").unwrap().render(7), "  7");
        assert_eq!(Pattern::parse("pw%%fixed").unwrap().render(7), "pw%fixed");
        assert!(Pattern::parse("%d%d").is_err());
        assert!(Pattern::parse("%s").is_err());
    }
}
