//! Input errors name the file, the line and the field.

mod common;

use common::{Fixture, session};
use orderly_sim::data::{read_sessions, read_soc_start, read_users};
use orderly_sim::{DataError, Inputs, SimError};

fn field_error(err: DataError) -> (u64, &'static str, String) {
    match err {
        DataError::Field {
            line, field, value, ..
        } => (line, field, value),
        other => panic!("expected a field error, got {other:?}"),
    }
}

#[test]
fn good_rows_parse_with_decimal_commas_quotes_and_na() {
    let f = Fixture::new(
        &[
            session(
                "u1",
                "s1",
                "2020-01-01 10:00:00",
                "2020-01-01 12:30:00",
                "12,5",
            ),
            session("u1", "s2", "2020-01-02 10:00:00", "NA", "3"),
        ],
        &["\"u1\";3,5;NA"],
    );
    let rows = read_sessions(&f.path("sessions.csv")).unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].line, 2);
    assert_eq!(rows[0].session_id, "s1");
    assert_eq!(rows[0].energy_kwh, Some(12.5));
    assert_eq!(rows[0].plugout.unwrap().to_string(), "2020-01-01T12:30:00");
    assert_eq!(rows[1].plugout, None);
    let users = read_users(&f.path("users.csv")).unwrap();
    assert_eq!(users["u1"].charging_power_kw, Some(3.5));
    assert_eq!(users["u1"].battery_kwh, None);
}

#[test]
fn bad_time_names_file_line_and_field() {
    let f = Fixture::new(
        &[
            session(
                "u1",
                "s1",
                "2020-01-01 10:00:00",
                "2020-01-01 12:30:00",
                "1",
            ),
            session(
                "u1",
                "s2",
                "2020-13-01 10:00:00",
                "2020-01-01 12:30:00",
                "1",
            ),
        ],
        &["\"u1\";3,5;40"],
    );
    let err = read_sessions(&f.path("sessions.csv")).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("sessions.csv:3:"), "{text}");
    assert!(text.contains("plugin_time"), "{text}");
    assert_eq!(
        field_error(err),
        (3, "plugin_time", "2020-13-01 10:00:00".into())
    );
}

#[test]
fn bad_and_negative_numbers_are_rejected() {
    let f = Fixture::new(
        &[session(
            "u1",
            "s1",
            "2020-01-01 10:00:00",
            "2020-01-01 12:30:00",
            "1,2,3",
        )],
        &["\"u1\";abc;40"],
    );
    let (line, field, _) = field_error(read_sessions(&f.path("sessions.csv")).unwrap_err());
    assert_eq!((line, field), (2, "energy_session"));
    let (line, field, value) = field_error(read_users(&f.path("users.csv")).unwrap_err());
    assert_eq!((line, field, value.as_str()), (2, "charging_power", "abc"));

    let f = Fixture::new(
        &[session(
            "u1",
            "s1",
            "2020-01-01 10:00:00",
            "2020-01-01 12:30:00",
            "-4",
        )],
        &["\"u1\";0;40"],
    );
    let (_, field, _) = field_error(read_sessions(&f.path("sessions.csv")).unwrap_err());
    assert_eq!(field, "energy_session");
    let (_, field, _) = field_error(read_users(&f.path("users.csv")).unwrap_err());
    assert_eq!(field, "charging_power");
}

#[test]
fn missing_id_and_duplicates_are_rejected() {
    let f = Fixture::new(
        &[
            session(
                "u1",
                "s1",
                "2020-01-01 10:00:00",
                "2020-01-01 12:30:00",
                "1",
            ),
            session(
                "u1",
                "s1",
                "2020-01-02 10:00:00",
                "2020-01-02 12:30:00",
                "1",
            ),
        ],
        &["\"u1\";1;40", "\"u1\";2;40"],
    );
    let (line, field, _) = field_error(read_sessions(&f.path("sessions.csv")).unwrap_err());
    assert_eq!((line, field), (3, "session_id"));
    let (line, field, _) = field_error(read_users(&f.path("users.csv")).unwrap_err());
    assert_eq!((line, field), (3, "user_id"));

    let f = Fixture::new(
        &[session(
            "",
            "s1",
            "2020-01-01 10:00:00",
            "2020-01-01 12:30:00",
            "1",
        )],
        &[],
    );
    let (line, field, _) = field_error(read_sessions(&f.path("sessions.csv")).unwrap_err());
    assert_eq!((line, field), (2, "user_id"));
}

#[test]
fn short_row_and_missing_column_are_reported() {
    let f = Fixture::new(&["\"L\";\"u1\";\"s1\";2020-01-01 10:00:00".to_owned()], &[]);
    match read_sessions(&f.path("sessions.csv")).unwrap_err() {
        DataError::Row { line, file, .. } => {
            assert_eq!(line, 2);
            assert!(file.ends_with("sessions.csv"));
        }
        other => panic!("expected a row error, got {other:?}"),
    }
    std::fs::write(f.path("soc.csv"), "\"session_id\";\"SoC_diff\"\n\"s1\";3\n").unwrap();
    match read_soc_start(&f.path("soc.csv")).unwrap_err() {
        DataError::MissingColumn { field, .. } => assert_eq!(field, "SoC_start"),
        other => panic!("expected a missing column, got {other:?}"),
    }
}

#[test]
fn unreadable_file_and_unknown_user_name_the_file() {
    let f = Fixture::new(
        &[session(
            "ghost",
            "s1",
            "2020-01-01 10:00:00",
            "2020-01-01 12:30:00",
            "1",
        )],
        &["\"u1\";1;40"],
    );
    let mut args = f.args("2020-01-01", 1, 15, 0.5);
    let err = Inputs::read(&args)
        .unwrap()
        .scenario(args.window())
        .unwrap_err();
    match err {
        SimError::Data(DataError::Field {
            file, line, field, ..
        }) => {
            assert!(file.ends_with("sessions.csv"));
            assert_eq!((line, field), (2, "user_id"));
        }
        other => panic!("expected a field error, got {other:?}"),
    }
    args.users = Some(f.path("nope.csv"));
    let text = Inputs::read(&args).unwrap_err().to_string();
    assert!(
        text.contains("nope.csv") && text.contains("cannot read"),
        "{text}"
    );
}

#[test]
fn broken_tariff_names_the_file() {
    let f = Fixture::new(&[], &[]);
    std::fs::write(
        f.path("t.json"),
        r#"{"name":"x","currency":"CNY","bands":[{"band":"a","price":1,"hours":[[0,20]]}]}"#,
    )
    .unwrap();
    let mut args = f.args("2020-01-01", 1, 15, 0.5);
    args.tariff = Some(f.path("t.json"));
    let text = Inputs::read(&args).unwrap_err().to_string();
    assert!(
        text.contains("t.json") && text.contains("no band covers 20:00"),
        "{text}"
    );
}
