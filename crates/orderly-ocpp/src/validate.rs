//! Validation of payloads against the embedded OCA OCPP 1.6 JSON schemas (draft 4), and the mapping
//! of schema breaches to OCPP-J error codes.
//!
//! # Mapping (OCPP-J 1.6 §4.2.3 wording)
//!
//! | schema keyword that failed | code | spec wording |
//! |---|---|---|
//! | `type` | `TypeConstraintViolation` | "violates data type constraints (e.g. "somestring": 12)" |
//! | `required`, `minItems`, `maxItems` | `OccurenceConstraintViolation` | "violates occurence constraints" (cardinality) |
//! | `enum`, `maxLength`, `minLength`, `pattern`, `format`, `minimum`, `maximum`, `multipleOf`, `additionalProperties` and the rest | `PropertyConstraintViolation` | "at least one field contains an invalid value" |
//!
//! The Python `ocpp` package maps differently (`required` → ProtocolError, `maxLength` →
//! TypeConstraintViolation, `additionalProperties`/others → FormatViolation); the brief and the spec
//! wording are followed here instead.
//!
//! When a payload breaks several constraints, the first error the validator reports decides the code.
//!
//! # Leniency
//! - `"format": "date-time"` accepts timestamps without a zone (read as UTC), see [`crate::time`].
//! - `multipleOf: 0.1` (charging limits): `jsonschema` decides it exactly, so `6.3` passes although
//!   `6.3 / 0.1` is not an integer in binary floating point (the Python `ocpp` package needs
//!   `Decimal` for the same thing); a test pins this down in case an upgrade changes it.

use std::sync::LazyLock;

use jsonschema::Validator;
use jsonschema::error::ValidationErrorKind;
use serde_json::Value;

use crate::action::Action;
use crate::frame::ErrorCode;
use crate::time::is_lenient_date_time;

/// A payload that breaks its schema.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code} at {path:?}: {message}")]
pub struct SchemaViolation {
    /// The OCPP-J code to answer with (see the module docs).
    pub code: ErrorCode,
    /// JSON pointer to the offending value in the payload (`""` for the payload itself).
    pub path: String,
    /// Human-readable reason naming the field.
    pub message: String,
}

/// Which of an action's two schemas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// `<Action>.json`, the CALL payload.
    Request,
    /// `<Action>Response.json`, the CALLRESULT payload.
    Response,
}

struct Compiled {
    request: Validator,
    response: Validator,
}

static VALIDATORS: LazyLock<Vec<Compiled>> = LazyLock::new(|| {
    Action::ALL
        .iter()
        .map(|a| Compiled {
            request: compile(a.request_schema())
                .unwrap_or_else(|e| panic!("embedded schema {a}.json: {e}")),
            response: compile(a.response_schema())
                .unwrap_or_else(|e| panic!("embedded schema {a}Response.json: {e}")),
        })
        .collect()
});

/// Compile one embedded schema text. Public within the crate so a test can prove every file loads
/// with a proper error instead of a panic.
pub(crate) fn compile(text: &str) -> Result<Validator, String> {
    let schema: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    jsonschema::draft4::options()
        .should_validate_formats(true)
        .with_format("date-time", is_lenient_date_time)
        .build(&schema)
        .map_err(|e| e.to_string())
}

/// Validate a payload against the request or response schema of `action`.
pub fn validate(
    action: Action,
    direction: Direction,
    payload: &Value,
) -> Result<(), SchemaViolation> {
    let compiled = &VALIDATORS[action.index()];
    let validator = match direction {
        Direction::Request => &compiled.request,
        Direction::Response => &compiled.response,
    };
    match validator.iter_errors(payload).next() {
        None => Ok(()),
        Some(err) => Err(SchemaViolation {
            code: code_for(err.kind()),
            path: err.instance_path().to_string(),
            message: describe(&err),
        }),
    }
}

/// Force compilation of every schema (otherwise done on first use), e.g. at server start.
pub fn warm_up() {
    LazyLock::force(&VALIDATORS);
}

fn code_for(kind: &ValidationErrorKind) -> ErrorCode {
    match kind {
        ValidationErrorKind::Type { .. } => ErrorCode::TypeConstraintViolation,
        ValidationErrorKind::Required { .. }
        | ValidationErrorKind::MinItems { .. }
        | ValidationErrorKind::MaxItems { .. } => ErrorCode::OccurenceConstraintViolation,
        _ => ErrorCode::PropertyConstraintViolation,
    }
}

fn describe(err: &jsonschema::ValidationError<'_>) -> String {
    let path = err.instance_path().to_string();
    let at = if path.is_empty() {
        "payload".to_owned()
    } else {
        format!("field {path}")
    };
    format!("{at}: {err}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_embedded_schema_file_compiles() {
        for a in Action::ALL {
            for (which, text) in [
                ("request", a.request_schema()),
                ("response", a.response_schema()),
            ] {
                let schema: Value = serde_json::from_str(text).unwrap();
                assert_eq!(
                    schema["$schema"], "http://json-schema.org/draft-04/schema#",
                    "{a} {which}"
                );
                compile(text).unwrap_or_else(|e| panic!("{a} {which}: {e}"));
            }
        }
        warm_up();
    }

    #[test]
    fn titles_name_the_action() {
        // Guards against a file copied under the wrong name.
        for a in Action::ALL {
            let req: Value = serde_json::from_str(a.request_schema()).unwrap();
            let resp: Value = serde_json::from_str(a.response_schema()).unwrap();
            assert_eq!(req["title"], format!("{a}Request"));
            assert_eq!(resp["title"], format!("{a}Response"));
        }
    }

    #[test]
    fn multiple_of_tenth_is_decided_on_the_decimal_value() {
        let period = |limit: Value| {
            json!({"connectorId": 1, "csChargingProfiles": {
                "chargingProfileId": 1, "stackLevel": 0,
                "chargingProfilePurpose": "TxDefaultProfile", "chargingProfileKind": "Absolute",
                "chargingSchedule": {"chargingRateUnit": "A",
                    "chargingSchedulePeriod": [{"startPeriod": 0, "limit": limit}]}}})
        };
        for ok in [
            json!(6.3),
            json!(16.0),
            json!(32),
            json!(0.7),
            json!(2.3),
            json!(3500.5),
            json!(1e3),
        ] {
            validate(
                Action::SetChargingProfile,
                Direction::Request,
                &period(ok.clone()),
            )
            .unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in [json!(6.35), json!(0.05), json!(4.35), json!(7.123)] {
            let e = validate(
                Action::SetChargingProfile,
                Direction::Request,
                &period(bad.clone()),
            )
            .expect_err(&bad.to_string());
            assert_eq!(e.code, ErrorCode::PropertyConstraintViolation);
            assert!(e.path.ends_with("/limit"), "{}", e.path);
        }
    }
}
