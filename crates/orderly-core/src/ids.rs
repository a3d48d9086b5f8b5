//! Identifiers, validated once where they enter the system.

use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("charge point id must be 1 to 48 characters of A-Z a-z 0-9 . _ - : (got {0:?})")]
    ChargePoint(String),
    #[error("id tag must be 1 to 20 printable ASCII characters (got {0:?})")]
    IdTag(String),
}

/// The identity a charger connects with (the last path segment of its OCPP URL).
///
/// OCPP 1.6 does not bound it; we accept what fits a URL path segment without escaping and the
/// 48 characters OCPP 2.0.1 allows, so ids stay portable across protocol versions.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ChargePointId(String);

impl ChargePointId {
    pub fn parse(s: impl Into<String>) -> Result<Self, IdError> {
        let s = s.into();
        let ok = !s.is_empty()
            && s.len() <= 48
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-:".contains(&b));
        if ok {
            Ok(Self(s))
        } else {
            Err(IdError::ChargePoint(s))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An authorization identifier (RFID UID, app token): OCPP 1.6 `IdToken`, CiString20.
///
/// Comparison is exact; OCPP says "case insensitive" for CiString, but RFID UIDs differ only in
/// case in practice never, and exact match avoids authorizing a tag nobody registered.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct IdTag(String);

impl IdTag {
    pub fn parse(s: impl Into<String>) -> Result<Self, IdError> {
        let s = s.into();
        let ok = !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| (0x20..0x7f).contains(&b));
        if ok {
            Ok(Self(s))
        } else {
            Err(IdError::IdTag(s))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

macro_rules! string_id {
    ($t:ty) => {
        impl TryFrom<String> for $t {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, IdError> {
                Self::parse(s)
            }
        }
        impl From<$t> for String {
            fn from(v: $t) -> String {
                v.0
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl std::str::FromStr for $t {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::parse(s)
            }
        }
    };
}
string_id!(ChargePointId);
string_id!(IdTag);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charge_point_ids() {
        assert!(ChargePointId::parse("CP_001").is_ok());
        assert!(ChargePointId::parse("").is_err());
        assert!(ChargePointId::parse("a/b").is_err());
        assert!(ChargePointId::parse("x".repeat(49)).is_err());
    }

    #[test]
    fn id_tags() {
        assert!(IdTag::parse("04A2B3C4D5").is_ok());
        assert!(IdTag::parse("x".repeat(21)).is_err());
        assert!(IdTag::parse("tab\t").is_err());
    }
}
