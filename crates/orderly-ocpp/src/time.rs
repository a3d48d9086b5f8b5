//! Lenient OCPP timestamps (built on `jiff`).
//!
//! OCPP 1.6 says `dateTime` is RFC 3339 / ISO 8601 with a time zone, but real chargers send
//! `2026-11-26T08:00:00` or `2026-11-26T08:00:00.123` with no zone. Rejecting those would lose
//! transactions, so [`Timestamp::parse`] accepts, in order:
//! 1. an RFC 3339 / ISO 8601 instant with `Z`/`z` or a numeric offset (`+08:00`, `+0800`), `T` or
//!    a space between date and time, 0 to 9 fractional digits, seconds optional;
//! 2. a civil date-time with no zone, **read as UTC** (the spec's intent: 1.6 §3.13 recommends
//!    UTC for all timestamps, and chargers that omit the zone almost always mean UTC).
//!
//! The same rule is used by the schema validator for `"format": "date-time"`, so a payload that
//! validates always converts to typed messages. Output is always RFC 3339 in UTC (`...Z`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An instant sent or received in an OCPP message. See the module docs for leniency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub jiff::Timestamp);

impl Timestamp {
    /// Parse leniently (see module docs).
    pub fn parse(s: &str) -> Result<Timestamp, TimestampError> {
        let s = s.trim();
        if let Ok(t) = s.parse::<jiff::Timestamp>() {
            return Ok(Timestamp(t));
        }
        match s.parse::<jiff::civil::DateTime>() {
            // Only a civil date-time *with* a time part: a bare date is not a dateTime.
            Ok(dt) if s.len() > 10 => jiff::tz::TimeZone::UTC
                .to_timestamp(dt)
                .map(Timestamp)
                .map_err(|_| TimestampError(s.to_owned())),
            _ => Err(TimestampError(s.to_owned())),
        }
    }

    /// The underlying `jiff` instant.
    pub fn as_jiff(self) -> jiff::Timestamp {
        self.0
    }

    /// Milliseconds since the Unix epoch.
    pub fn as_millis(self) -> i64 {
        self.0.as_millisecond()
    }
}

impl From<jiff::Timestamp> for Timestamp {
    fn from(t: jiff::Timestamp) -> Self {
        Timestamp(t)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // jiff prints UTC with `Z` and only as many fractional digits as needed.
        fmt::Display::fmt(&self.0, f)
    }
}

impl FromStr for Timestamp {
    type Err = TimestampError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Timestamp::parse(s)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Timestamp::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Text that is not a date-time even under the lenient rules.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an RFC 3339 date-time: {0:?}")]
pub struct TimestampError(pub String);

/// The check used for `"format": "date-time"` in the schemas.
pub(crate) fn is_lenient_date_time(s: &str) -> bool {
    Timestamp::parse(s).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_zoned_and_zoneless() {
        let z = Timestamp::parse("2026-11-26T08:00:00Z").unwrap();
        assert_eq!(Timestamp::parse("2026-11-26T16:00:00+08:00").unwrap(), z);
        assert_eq!(Timestamp::parse("2026-11-26T08:00:00").unwrap(), z);
        assert_eq!(
            Timestamp::parse("2026-11-26T08:00:00.250")
                .unwrap()
                .as_millis(),
            z.as_millis() + 250
        );
        assert_eq!(z.to_string(), "2026-11-26T08:00:00Z");
    }

    #[test]
    fn accepts_what_chargers_send() {
        let z = Timestamp::parse("2026-11-26T08:00:00Z").unwrap();
        for ok in [
            "2026-11-26T08:00:00z",
            "2026-11-26T08:00:00.000Z",
            "2026-11-26T08:00:00.000000000Z",
            "2026-11-26T08:00:00+00:00",
            "2026-11-26T16:00:00+0800",
            "2026-11-26T03:00:00-05:00",
            "2026-11-26 08:00:00Z",
            "2026-11-26T08:00",
            " 2026-11-26T08:00:00Z ",
        ] {
            assert_eq!(Timestamp::parse(ok), Ok(z), "{ok}");
        }
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "",
            "yesterday",
            "2026-11-26",
            "2026-13-01T00:00:00Z",
            "12:00",
        ] {
            assert!(Timestamp::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn serde_round_trip() {
        let t: Timestamp = serde_json::from_str("\"2026-11-26T08:00:00.5\"").unwrap();
        assert_eq!(
            serde_json::to_string(&t).unwrap(),
            "\"2026-11-26T08:00:00.5Z\""
        );
    }
}
