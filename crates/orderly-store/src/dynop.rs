//! Helpers shared by the modules that define their writes as one [`crate::ops::DynOp`] enum
//! (`users`, `registry`, `upkeep`, `waiting`, ...): the inner-decision constructors and the
//! "load the row I just wrote" step, so each module states only its own SQL.

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AssertSqlSafe};

use crate::ops::{Applied, Outcome};
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
