//! Helpers shared by the modules that define their writes as one [`crate::ops::DynOp`] enum
//! (`users`, `registry`, `upkeep`, `waiting`, ...): the inner-decision constructors and the
//! "load the row I just wrote" step, the `DynOp` impl, and enums stored as text, so each
//! module states only its own SQL.

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AssertSqlSafe};

use crate::ops::{Applied, Outcome};
use crate::registry::exists;
use crate::{Result, StoreError};

/// An invalid-field decision (answered 400 naming the field).
pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> StoreError {
    StoreError::Invalid {
        field,
        reason: reason.into(),
    }
}

/// The answer of an operation returning `v` (see `Store::write_boxed`).
pub(crate) fn boxed<T: Send + 'static>(v: T) -> Applied {
    Ok(Ok(Outcome::Boxed(Box::new(v))))
}

/// One row by id through `sql` (with `$1` the id), decoded by `decode`: the outer error is the
/// database's, the inner one a row that does not decode.
pub(crate) async fn load_one<T>(
    conn: &mut AnyConnection,
    sql: String,
    id: i64,
    decode: fn(&AnyRow) -> Result<T>,
) -> Result<Result<Option<T>>, sqlx::Error> {
    let row = sqlx::query(AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(row.as_ref().map(decode).transpose())
}

/// Inside an operation: unwraps a `Result<Result<Option<T>>, sqlx::Error>` to the value, or
/// returns NotFound(`what`), the decoding error, or the database error.
macro_rules! found {
    ($e:expr, $what:expr) => {
        match $e? {
            Ok(Some(v)) => v,
            Ok(None) => return Ok(Err($crate::StoreError::NotFound($what))),
            Err(e) => return Ok(Err(e)),
        }
    };
}
pub(crate) use found;

/// `impl DynOp for $op` running its `async fn run(&self, conn) -> Applied`.
macro_rules! dyn_op {
    ($op:ty) => {
        impl $crate::ops::DynOp for $op {
            fn apply<'c>(
                &'c self,
                conn: &'c mut sqlx::AnyConnection,
            ) -> std::pin::Pin<
                Box<dyn std::future::Future<Output = $crate::ops::Applied> + Send + 'c>,
            > {
                Box::pin(self.run(conn))
            }
        }
    };
}
pub(crate) use dyn_op;

/// A stored text that does not parse back is corruption, not bad input.
pub(crate) fn corrupt(e: StoreError) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

/// An enum stored as snake_case text: `ALL`, `as_str`, and `FromStr` answering Invalid naming
/// `$field` (map it with [`corrupt`] when reading rows).
macro_rules! string_enum {
    ($(#[$m:meta])* $name:ident, $field:literal { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::StoreError;
            fn from_str(s: &str) -> $crate::Result<Self> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err($crate::StoreError::Invalid { field: $field, reason: format!("unknown value {s:?}") }),
                }
            }
        }
    };
}
pub(crate) use string_enum;

/// Inside an operation: returns the decision (inner Err) of a validation step.
macro_rules! check {
    ($e:expr) => {
        if let Err(e) = $e? {
            return Ok(Err(e));
        }
    };
}
pub(crate) use check;

/// NotFound(`community ID`) unless the community exists (use with [`check!`]).
pub(crate) async fn require_community(
    conn: &mut AnyConnection,
    id: &str,
) -> Result<Result<()>, sqlx::Error> {
    Ok(
        if exists(conn, "SELECT 1 AS one FROM communities WHERE id = $1", id).await? {
            Ok(())
        } else {
            Err(StoreError::NotFound(format!("community {id}")))
        },
    )
}

/// NotFound(`charger ID`) unless the charger exists (use with [`check!`]).
pub(crate) async fn require_charger(
    conn: &mut AnyConnection,
    id: &str,
) -> Result<Result<()>, sqlx::Error> {
    Ok(
        if exists(conn, "SELECT 1 AS one FROM chargers WHERE id = $1", id).await? {
            Ok(())
        } else {
            Err(StoreError::NotFound(format!("charger {id}")))
        },
    )
}
