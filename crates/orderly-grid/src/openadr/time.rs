//! xCal times: RFC 3339 date-times and ISO 8601 durations as 2.0b writes them.

use jiff::{SignedDuration, Timestamp};

use super::OpenAdrError;

/// Parses `2026-11-26T14:08:00.790033Z` (any RFC 3339 offset).
pub fn parse_timestamp(text: &str) -> Result<Timestamp, OpenAdrError> {
    text.trim()
        .parse::<Timestamp>()
        .map_err(|e| OpenAdrError::Invalid(format!("date-time {text:?}: {e}")))
}

/// Writes UTC with microseconds, as openleadr does (the XSD's xs:dateTime).
pub fn format_timestamp(at: Timestamp) -> String {
    at.strftime("%Y-%m-%dT%H:%M:%S.%6fZ").to_string()
}

/// Parses an ISO 8601 duration: `[-]P[nW][nD][T[nH][nM][n[.n]S]]`. Days are 24 h (xCal in
/// OpenADR has no calendar arithmetic: durations are exact). Years and months are refused.
pub fn parse_duration(text: &str) -> Result<SignedDuration, OpenAdrError> {
    let bad = || OpenAdrError::Invalid(format!("duration {text:?}"));
    let s = text.trim();
    let (negative, s) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let s = s.strip_prefix('P').ok_or_else(bad)?;
    let mut seconds = 0f64;
    let mut in_time = false;
    let mut number = String::new();
    let mut any = false;
    for c in s.chars() {
        match c {
            'T' if !in_time && number.is_empty() => in_time = true,
            '0'..='9' | '.' | ',' => number.push(if c == ',' { '.' } else { c }),
            _ => {
                let value: f64 = number.parse().map_err(|_| bad())?;
                number.clear();
                let unit = match (in_time, c) {
                    (false, 'W') => 7.0 * 86_400.0,
                    (false, 'D') => 86_400.0,
                    (true, 'H') => 3_600.0,
                    (true, 'M') => 60.0,
                    (true, 'S') => 1.0,
                    _ => return Err(bad()),
                };
                seconds += value * unit;
                any = true;
            }
        }
    }
    if !number.is_empty() || !any || !seconds.is_finite() {
        return Err(bad());
    }
    let duration = SignedDuration::try_from_secs_f64(seconds).map_err(|_| bad())?;
    Ok(if negative { -duration } else { duration })
}

/// Writes `PT{h}H{m}M{s}S` (whole parts only, zero as `PT0S`).
pub fn format_duration(duration: SignedDuration) -> String {
    let mut out = String::new();
    if duration.is_negative() {
        out.push('-');
    }
    out.push_str("PT");
    let total = duration.as_secs().unsigned_abs();
    let millis = duration.subsec_millis().unsigned_abs();
    let (h, m, s) = (total / 3600, (total % 3600) / 60, total % 60);
    if h > 0 {
        out.push_str(&format!("{h}H"));
    }
    if m > 0 {
        out.push_str(&format!("{m}M"));
    }
    if s > 0 || millis > 0 || (h == 0 && m == 0) {
        if millis > 0 {
            out.push_str(&format!("{s}.{millis:03}S"));
        } else {
            out.push_str(&format!("{s}S"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_round_trip() {
        for (text, secs) in [
            ("PT1S", 1.0),
            ("PT30M", 1800.0),
            ("PT1H", 3600.0),
            ("P1D", 86_400.0),
            ("P1DT2H", 93_600.0),
            ("PT0S", 0.0),
            ("PT1.5S", 1.5),
            ("-PT5M", -300.0),
            ("P1W", 604_800.0),
        ] {
            assert_eq!(parse_duration(text).unwrap().as_secs_f64(), secs, "{text}");
        }
        for secs in [0, 1, 59, 60, 61, 3600, 3661, 86_400] {
            let d = SignedDuration::from_secs(secs);
            assert_eq!(parse_duration(&format_duration(d)).unwrap(), d);
        }
        assert_eq!(format_duration(SignedDuration::from_secs(10)), "PT10S");
        assert_eq!(format_duration(SignedDuration::from_secs(5400)), "PT1H30M");
    }

    #[test]
    fn bad_durations_are_refused() {
        for text in ["", "P", "PT", "1H", "P1Y", "PT1", "P1M", "PTxS"] {
            assert!(parse_duration(text).is_err(), "{text}");
        }
    }

    #[test]
    fn timestamps_round_trip() {
        let at = parse_timestamp("2026-11-26T14:08:00.790033Z").unwrap();
        assert_eq!(format_timestamp(at), "2026-11-26T14:08:00.790033Z");
        assert_eq!(
            parse_timestamp("2026-11-26T22:08:00+08:00").unwrap(),
            parse_timestamp("2026-11-26T14:08:00Z").unwrap()
        );
    }
}
