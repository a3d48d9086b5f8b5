//! People who log in (migration 0004): users with one role each, their scopes (communities or
//! districts), the id tags that make transactions theirs, and login sessions.
//!
//! Passwords are argon2 hashes computed on the blocking pool (the charger machinery in
//! `credentials`); session tokens are 256 random bits stored as SHA-256 like admin tokens, with
//! an expiry. Writes go through the group-commit writer as [`DynOp`]s, one transaction each.

use std::collections::BTreeSet;
use std::pin::Pin;
use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use sqlx::AnyConnection;

use crate::ops::{Applied, DynOp, Op, Outcome};
use crate::rows::{get, ms, ts};
use crate::{Result, Store, StoreError, secrets, unexpected};

/// What a user may do is decided by the server from the role and the scopes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Resident,
    ChargerOwner,
    PropertyManager,
    Operator,
    GridAggregator,
    Regulator,
    Admin,
}

impl Role {
    pub const ALL: [Role; 7] = [
        Role::Resident,
        Role::ChargerOwner,
        Role::PropertyManager,
        Role::Operator,
        Role::GridAggregator,
        Role::Regulator,
        Role::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Resident => "resident",
            Role::ChargerOwner => "charger_owner",
            Role::PropertyManager => "property_manager",
            Role::Operator => "operator",
            Role::GridAggregator => "grid_aggregator",
            Role::Regulator => "regulator",
            Role::Admin => "admin",
        }
    }

    /// Roles whose reach is a set of communities/districts (the others act on their own things,
    /// or everywhere).
    pub fn is_scoped(self) -> bool {
        matches!(
            self,
            Role::PropertyManager | Role::Operator | Role::GridAggregator
        )
    }
}

impl std::str::FromStr for Role {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| StoreError::Invalid {
                field: "role",
                reason: format!("unknown role {s:?}"),
            })
    }
}

/// A community or a district a scoped user may act in.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum Scope {
    Community(String),
    District(String),
}

impl Scope {
    fn parts(&self) -> (&'static str, &str) {
        match self {
            Scope::Community(id) => ("community", id),
            Scope::District(id) => ("district", id),
        }
    }
}

/// A user as stored (never the password).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UserRecord {
    /// Login name.
    pub id: String,
    pub name: String,
    pub role: Role,
    pub scopes: Vec<Scope>,
    pub id_tags: Vec<String>,
    pub disabled: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// A user to create.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub id: String,
    pub name: String,
    pub password: String,
    pub role: Role,
    pub scopes: Vec<Scope>,
    pub id_tags: Vec<String>,
}

/// Changes to a user; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct UserUpdate {
    pub name: Option<String>,
    pub password: Option<String>,
    pub role: Option<Role>,
    pub scopes: Option<Vec<Scope>>,
    pub id_tags: Option<Vec<String>>,
    pub disabled: Option<bool>,
}

/// A login session just opened: the token is shown once, only its hash is stored.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub token: String,
    pub expires_at: Timestamp,
}

#[derive(Debug)]
enum UserOp {
    Create {
        user: NewUser,
        password_hash: String,
        now: Timestamp,
    },
    Update {
        id: String,
        update: UserUpdate,
        password_hash: Option<String>,
        now: Timestamp,
    },
    Delete {
        id: String,
    },
    OpenSession {
        user_id: String,
        token_hash: String,
        now: Timestamp,
        expires: Timestamp,
    },
    CloseSession {
        token_hash: String,
    },
}

impl DynOp for UserOp {
    fn apply<'c>(
        &'c self,
        conn: &'c mut AnyConnection,
    ) -> Pin<Box<dyn Future<Output = Applied> + Send + 'c>> {
        Box::pin(self.run(conn))
    }
}

async fn user_exists(conn: &mut AnyConnection, id: &str) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query("SELECT 1 AS one FROM users WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
        .is_some())
}

/// Id tags already held by a user other than `user`: a tag belongs to one person.
async fn tag_taken(
    conn: &mut AnyConnection,
    tags: &[String],
    user: &str,
) -> Result<Option<String>, sqlx::Error> {
    for tag in tags {
        let holder: Option<String> =
            sqlx::query_scalar("SELECT user_id FROM user_id_tags WHERE tag = $1")
                .bind(tag.as_str())
                .fetch_optional(&mut *conn)
                .await?;
        if holder.is_some_and(|h| h != user) {
            return Ok(Some(tag.clone()));
        }
    }
    Ok(None)
}

async fn write_scopes(
    conn: &mut AnyConnection,
    user: &str,
    scopes: &[Scope],
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM user_scopes WHERE user_id = $1")
        .bind(user)
        .execute(&mut *conn)
        .await?;
    let unique: BTreeSet<&Scope> = scopes.iter().collect();
    for scope in unique {
        let (kind, target) = scope.parts();
        sqlx::query("INSERT INTO user_scopes (user_id, kind, target) VALUES ($1, $2, $3)")
            .bind(user)
            .bind(kind)
            .bind(target)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

async fn write_tags(
    conn: &mut AnyConnection,
    user: &str,
    tags: &[String],
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM user_id_tags WHERE user_id = $1")
        .bind(user)
        .execute(&mut *conn)
        .await?;
    let unique: BTreeSet<&String> = tags.iter().collect();
    for tag in unique {
        sqlx::query("INSERT INTO user_id_tags (tag, user_id) VALUES ($1, $2)")
            .bind(tag.as_str())
            .bind(user)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

impl UserOp {
    async fn run(&self, conn: &mut AnyConnection) -> Applied {
        match self {
            UserOp::Create {
                user,
                password_hash,
                now,
            } => {
                if user_exists(conn, &user.id).await? {
                    return Ok(Err(StoreError::Conflict(format!("user {}", user.id))));
                }
                if let Some(tag) = tag_taken(conn, &user.id_tags, &user.id).await? {
                    return Ok(Err(StoreError::Conflict(format!(
                        "id tag {tag} of another user"
                    ))));
                }
                sqlx::query(
                    "INSERT INTO users (id, name, password_hash, role, disabled, created_at_ms, \
                     updated_at_ms) VALUES ($1, $2, $3, $4, 0, $5, $6)",
                )
                .bind(user.id.as_str())
                .bind(user.name.as_str())
                .bind(password_hash.as_str())
                .bind(user.role.as_str())
                .bind(ms(*now))
                .bind(ms(*now))
                .execute(&mut *conn)
                .await?;
                write_scopes(conn, &user.id, &user.scopes).await?;
                write_tags(conn, &user.id, &user.id_tags).await?;
                Ok(Ok(Outcome::Done))
            }
            UserOp::Update {
                id,
                update,
                password_hash,
                now,
            } => {
                if !user_exists(conn, id).await? {
                    return Ok(Err(StoreError::NotFound(format!("user {id}"))));
                }
                if let Some(tags) = &update.id_tags
                    && let Some(tag) = tag_taken(conn, tags, id).await?
                {
                    return Ok(Err(StoreError::Conflict(format!(
                        "id tag {tag} of another user"
                    ))));
                }
                sqlx::query(
                    "UPDATE users SET name = COALESCE($1, name), \
                     password_hash = COALESCE($2, password_hash), role = COALESCE($3, role), \
                     disabled = COALESCE($4, disabled), updated_at_ms = $5 WHERE id = $6",
                )
                .bind(update.name.as_deref())
                .bind(password_hash.as_deref())
                .bind(update.role.map(Role::as_str))
                .bind(update.disabled.map(i64::from))
                .bind(ms(*now))
                .bind(id.as_str())
                .execute(&mut *conn)
                .await?;
                if let Some(scopes) = &update.scopes {
                    write_scopes(conn, id, scopes).await?;
                }
                if let Some(tags) = &update.id_tags {
                    write_tags(conn, id, tags).await?;
                }
                // A new password, a new role or a disabled account ends every open session.
                if password_hash.is_some() || update.role.is_some() || update.disabled == Some(true)
                {
                    sqlx::query("DELETE FROM user_sessions WHERE user_id = $1")
                        .bind(id.as_str())
                        .execute(&mut *conn)
                        .await?;
                }
                Ok(Ok(Outcome::Done))
            }
            UserOp::Delete { id } => {
                let r = sqlx::query("DELETE FROM users WHERE id = $1")
                    .bind(id.as_str())
                    .execute(&mut *conn)
                    .await?;
                Ok(Ok(Outcome::Flag(r.rows_affected() > 0)))
            }
            UserOp::OpenSession {
                user_id,
                token_hash,
                now,
                expires,
            } => {
                // Expired sessions are swept here, at login, rather than by a timer.
                sqlx::query("DELETE FROM user_sessions WHERE expires_at_ms <= $1")
                    .bind(ms(*now))
                    .execute(&mut *conn)
                    .await?;
                if !user_exists(conn, user_id).await? {
                    return Ok(Err(StoreError::NotFound(format!("user {user_id}"))));
                }
                sqlx::query(
                    "INSERT INTO user_sessions (token_hash, user_id, created_at_ms, expires_at_ms) \
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(token_hash.as_str())
                .bind(user_id.as_str())
                .bind(ms(*now))
                .bind(ms(*expires))
                .execute(&mut *conn)
                .await?;
                Ok(Ok(Outcome::Done))
            }
            UserOp::CloseSession { token_hash } => {
                let r = sqlx::query("DELETE FROM user_sessions WHERE token_hash = $1")
                    .bind(token_hash.as_str())
                    .execute(&mut *conn)
                    .await?;
                Ok(Ok(Outcome::Flag(r.rows_affected() > 0)))
            }
        }
    }
}

impl Store {
    /// Queues an operation defined outside `ops` and returns its answer.
    pub(crate) async fn write_dyn(&self, op: impl DynOp + 'static) -> Result<Outcome> {
        self.write(Op::Dyn(Arc::new(op))).await
    }

    /// [`Store::write_dyn`] for an operation answering `Outcome::Boxed(T)`.
    pub(crate) async fn write_boxed<T: 'static>(&self, op: impl DynOp + 'static) -> Result<T> {
        match self.write_dyn(op).await? {
            Outcome::Boxed(b) => b
                .downcast::<T>()
                .map(|b| *b)
                .map_err(|_| StoreError::Corrupt("writer answered with an unexpected type".into())),
            other => Err(unexpected(other)),
        }
    }

    async fn hash_password(&self, password: String) -> Result<String> {
        self.inner.verifier.hash(password).await
    }

    async fn verify_password_cached(&self, key: &str, password: &str, phc: String) -> Result<bool> {
        self.inner.verifier.verify(key, password, phc).await
    }

    /// Creates a user (Conflict if the login name or one of the id tags is taken).
    pub async fn create_user(&self, user: NewUser, now: Timestamp) -> Result<UserRecord> {
        validate_password(&user.password)?;
        let password_hash = self.hash_password(user.password.clone()).await?;
        let id = user.id.clone();
        crate::done(
            self.write_dyn(UserOp::Create {
                user,
                password_hash,
                now,
            })
            .await?,
        )?;
        self.get_user(&id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("user {id}")))
    }

    /// Changes a user. A new password, role or disabling ends the user's sessions.
    pub async fn update_user(
        &self,
        id: &str,
        update: UserUpdate,
        now: Timestamp,
    ) -> Result<UserRecord> {
        let password_hash = match &update.password {
            Some(p) => {
                validate_password(p)?;
                Some(self.hash_password(p.clone()).await?)
            }
            None => None,
        };
        crate::done(
            self.write_dyn(UserOp::Update {
                id: id.to_owned(),
                update,
                password_hash,
                now,
            })
            .await?,
        )?;
        self.get_user(id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("user {id}")))
    }

    /// Removes a user with their scopes, id-tag links and sessions. Returns whether it existed.
    pub async fn delete_user(&self, id: &str) -> Result<bool> {
        crate::flag(self.write_dyn(UserOp::Delete { id: id.to_owned() }).await?)
    }

    pub async fn get_user(&self, id: &str) -> Result<Option<UserRecord>> {
        let row = sqlx::query(
            "SELECT id, name, role, disabled, created_at_ms, updated_at_ms FROM users WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        match row {
            None => Ok(None),
            Some(row) => Ok(Some(self.user_from_row(&row).await?)),
        }
    }

    /// All users, by login name.
    pub async fn list_users(&self) -> Result<Vec<UserRecord>> {
        let rows = sqlx::query(
            "SELECT id, name, role, disabled, created_at_ms, updated_at_ms FROM users ORDER BY id",
        )
        .fetch_all(self.pool())
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            out.push(self.user_from_row(row).await?);
        }
        Ok(out)
    }

    async fn user_from_row(&self, row: &sqlx::any::AnyRow) -> Result<UserRecord> {
        let id: String = get(row, "id")?;
        let role: String = get(row, "role")?;
        let scope_rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT kind, target FROM user_scopes WHERE user_id = $1 ORDER BY kind, target",
        )
        .bind(id.as_str())
        .fetch_all(self.pool())
        .await?;
        let scopes = scope_rows
            .into_iter()
            .map(|(kind, target)| match kind.as_str() {
                "community" => Ok(Scope::Community(target)),
                "district" => Ok(Scope::District(target)),
                other => Err(StoreError::Corrupt(format!("user_scopes.kind: {other:?}"))),
            })
            .collect::<Result<Vec<_>>>()?;
        let id_tags: Vec<String> =
            sqlx::query_scalar("SELECT tag FROM user_id_tags WHERE user_id = $1 ORDER BY tag")
                .bind(id.as_str())
                .fetch_all(self.pool())
                .await?;
        Ok(UserRecord {
            role: role
                .parse()
                .map_err(|_| StoreError::Corrupt(format!("users.role: {role:?}")))?,
            name: get(row, "name")?,
            disabled: get::<i64>(row, "disabled")? != 0,
            created_at: ts(row, "created_at_ms")?,
            updated_at: ts(row, "updated_at_ms")?,
            scopes,
            id_tags,
            id,
        })
    }

    /// Checks a login. `Ok(None)` for an unknown user, a wrong password or a disabled account
    /// (the caller cannot tell which: no user enumeration through login).
    pub async fn verify_user_password(
        &self,
        id: &str,
        password: &str,
    ) -> Result<Option<UserRecord>> {
        let row: Option<(String, i64)> =
            sqlx::query_as("SELECT password_hash, disabled FROM users WHERE id = $1")
                .bind(id)
                .fetch_optional(self.pool())
                .await?;
        let Some((hash, disabled)) = row else {
            // Pay the same argon2 price as for a known user, so timing does not tell which
            // login names exist.
            let dummy = match DUMMY_HASH.get() {
                Some(h) => h.clone(),
                None => {
                    let h = self.hash_password("no such user".into()).await?;
                    DUMMY_HASH.get_or_init(|| h).clone()
                }
            };
            // A key no user has ("user:" + empty id is not a valid login): never a cache hit.
            self.verify_password_cached("user:", password, dummy)
                .await?;
            return Ok(None);
        };
        // The cache key is prefixed so a user never shares an entry with a charger of that id.
        let ok = self
            .verify_password_cached(&format!("user:{id}"), password, hash)
            .await?;
        if !ok || disabled != 0 {
            return Ok(None);
        }
        self.get_user(id).await
    }

    /// Opens a session for `user_id` lasting `ttl`; returns the token (only its hash is kept).
    pub async fn open_session(
        &self,
        user_id: &str,
        ttl: SignedDuration,
        now: Timestamp,
    ) -> Result<NewSession> {
        let token = secrets::new_token();
        let expires = now.checked_add(ttl).map_err(|e| StoreError::Invalid {
            field: "ttl",
            reason: e.to_string(),
        })?;
        crate::done(
            self.write_dyn(UserOp::OpenSession {
                user_id: user_id.to_owned(),
                token_hash: secrets::token_hash(&token),
                now,
                expires,
            })
            .await?,
        )?;
        Ok(NewSession {
            token,
            expires_at: expires,
        })
    }

    /// The user of a session token still valid at `now` (and not disabled), else None.
    pub async fn session_user(&self, token: &str, now: Timestamp) -> Result<Option<UserRecord>> {
        let user: Option<String> = sqlx::query_scalar(
            "SELECT s.user_id FROM user_sessions s JOIN users u ON u.id = s.user_id \
             WHERE s.token_hash = $1 AND s.expires_at_ms > $2 AND u.disabled = 0",
        )
        .bind(secrets::token_hash(token))
        .bind(ms(now))
        .fetch_optional(self.pool())
        .await?;
        match user {
            Some(id) => self.get_user(&id).await,
            None => Ok(None),
        }
    }

    /// Ends a session; returns whether it existed.
    pub async fn close_session(&self, token: &str) -> Result<bool> {
        crate::flag(
            self.write_dyn(UserOp::CloseSession {
                token_hash: secrets::token_hash(token),
            })
            .await?,
        )
    }

    /// The user an id tag belongs to, if any.
    pub async fn id_tag_owner(&self, tag: &str) -> Result<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT user_id FROM user_id_tags WHERE tag = $1")
                .bind(tag)
                .fetch_optional(self.pool())
                .await?,
        )
    }

    /// Communities registered in any of `districts` (to expand a district scope).
    pub async fn communities_in_districts(&self, districts: &[String]) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for d in districts {
            let ids: Vec<String> =
                sqlx::query_scalar("SELECT id FROM communities WHERE district_id = $1")
                    .bind(d.as_str())
                    .fetch_all(self.pool())
                    .await?;
            out.extend(ids);
        }
        Ok(out)
    }
}

/// An argon2 hash of nothing anyone knows, checked for logins of unknown users.
static DUMMY_HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Minimal rule: people choose passwords, and an empty or very short one is a mistake.
fn validate_password(p: &str) -> Result<()> {
    if p.chars().count() < 8 {
        return Err(StoreError::Invalid {
            field: "password",
            reason: "must have at least 8 characters".into(),
        });
    }
    Ok(())
}
