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
//! - `multipleOf: 0.1` (charging limits) is checked on the decimal text, so `6.3` passes although
//!   `6.3 / 0.1` is not an integer in binary floating point (the Python `ocpp` package works around
//!   the same problem with `Decimal`).

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
    // The files have `multipleOf: 0.1`; replace it with our decimal-text check (see module docs).
    let schema = replace_multiple_of(schema);
    jsonschema::draft4::options()
        .should_validate_formats(true)
        .with_format("date-time", is_lenient_date_time)
        .with_keyword("x-multipleOfDecimal", |_, value, _| {
            Ok(Box::new(DecimalMultipleOf::new(value)?))
        })
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

/// Rewrite `{"multipleOf": x}` into our custom keyword everywhere in a schema.
fn replace_multiple_of(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| {
                    if k == "multipleOf" && v.is_number() {
                        ("x-multipleOfDecimal".to_owned(), v)
                    } else {
                        (k, replace_multiple_of(v))
                    }
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(replace_multiple_of).collect()),
        other => other,
    }
}

/// `multipleOf` for a power of ten (the schemas only use 0.1): a number is a multiple of 10^-d when
/// its shortest decimal representation has at most d fractional digits.
struct DecimalMultipleOf {
    max_fraction_digits: i64,
}

impl DecimalMultipleOf {
    fn new(value: &Value) -> Result<Self, jsonschema::ValidationError<'static>> {
        let multiple = value.as_f64().unwrap_or(f64::NAN);
        // Accept only 10^-d for d in 0..=9: that is what the schemas use (0.1).
        (0..10)
            .find(|d| (10f64.powi(-d) - multiple).abs() < 1e-15)
            .map(|d| DecimalMultipleOf {
                max_fraction_digits: d as i64,
            })
            .ok_or_else(|| {
                jsonschema::ValidationError::schema(format!(
                    "multipleOf {value} in an embedded schema is not a power of ten <= 1"
                ))
            })
    }
}

impl<'i> jsonschema::Keyword<'i> for DecimalMultipleOf {
    fn validate(&self, instance: &'i Value) -> Result<(), jsonschema::ValidationError<'i>> {
        if self.is_valid(instance) {
            Ok(())
        } else {
            Err(jsonschema::ValidationError::custom(format!(
                "{instance} is not a multiple of {}",
                10f64.powi(-(self.max_fraction_digits as i32))
            )))
        }
    }

    fn is_valid(&self, instance: &'i Value) -> bool {
        let Value::Number(n) = instance else {
            return true;
        };
        if n.is_i64() || n.is_u64() {
            return true;
        }
        // serde_json prints the shortest text that reads back to the same f64 (ryu), which is
        // the decimal the charger wrote, e.g. 6.3 → "6.3", 16.0 → "16.0", 1e-7 → "1e-7".
        let text = n.to_string();
        let (mantissa, exponent) = match text.split_once(['e', 'E']) {
            Some((m, e)) => (m, e.parse::<i64>().unwrap_or(0)),
            None => (text.as_str(), 0),
        };
        let fraction = mantissa
            .split_once('.')
            .map(|(_, f)| f.trim_end_matches('0').len() as i64)
            .unwrap_or(0);
        fraction - exponent <= self.max_fraction_digits
    }
}
