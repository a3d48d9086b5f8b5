//! Readers for the Norway residential dataset (see `data/norway-residential/README.md`):
//! semicolon-separated, quoted strings, decimal commas, `NA` for unknown values, local naive
//! times. Each reader turns rows into typed records; a value that is present but unusable is an
//! error naming the file, line and field, while `NA` becomes `None` (the window rules decide
//! what a missing value means).

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use jiff::civil::DateTime;

use crate::error::DataError;

/// One row of `sessions.csv`.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRow {
    /// Line of the row in its file (1-based, the header is line 1).
    pub line: u64,
    pub location: String,
    pub user_id: String,
    pub session_id: String,
    pub plugin: Option<DateTime>,
    pub plugout: Option<DateTime>,
    pub energy_kwh: Option<f64>,
}

/// One row of `users.csv`.
#[derive(Debug, Clone, PartialEq)]
pub struct UserRow {
    pub line: u64,
    pub user_id: String,
    /// The household's measured charging power (kW); `None` where the data says `NA`.
    pub charging_power_kw: Option<f64>,
    /// Estimated battery capacity (kWh); `None` where the data says `NA`.
    pub battery_kwh: Option<f64>,
}

/// A CSV file with a header, fields looked up by column name so column order does not matter.
struct Table {
    file: PathBuf,
    reader: csv::Reader<File>,
    columns: Vec<String>,
}

impl Table {
    fn open(file: &Path) -> Result<Self, DataError> {
        let handle = File::open(file).map_err(|source| DataError::Io {
            file: file.to_path_buf(),
            source,
        })?;
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(b';')
            .has_headers(true)
            .from_reader(handle);
        let columns = reader
            .headers()
            .map_err(|e| csv_error(file, e))?
            .iter()
            .map(str::to_owned)
            .collect();
        Ok(Self {
            file: file.to_path_buf(),
            reader,
            columns,
        })
    }

    fn column(&self, field: &'static str) -> Result<usize, DataError> {
        self.columns
            .iter()
            .position(|c| c == field)
            .ok_or_else(|| DataError::MissingColumn {
                file: self.file.clone(),
                field,
            })
    }

    /// Calls `each` with every data row and its line number.
    fn rows(
        &mut self,
        mut each: impl FnMut(&Row<'_>) -> Result<(), DataError>,
    ) -> Result<(), DataError> {
        let mut record = csv::StringRecord::new();
        loop {
            match self.reader.read_record(&mut record) {
                Ok(false) => return Ok(()),
                Ok(true) => {
                    let line = record.position().map_or(0, csv::Position::line);
                    each(&Row {
                        file: &self.file,
                        line,
                        record: &record,
                    })?;
                }
                Err(e) => return Err(csv_error(&self.file, e)),
            }
        }
    }
}

fn csv_error(file: &Path, e: csv::Error) -> DataError {
    let line = e.position().map_or(0, csv::Position::line);
    match e.into_kind() {
        csv::ErrorKind::Io(source) => DataError::Io {
            file: file.to_path_buf(),
            source,
        },
        kind => DataError::Row {
            file: file.to_path_buf(),
            line,
            reason: describe_csv_error(kind),
        },
    }
}

fn describe_csv_error(kind: csv::ErrorKind) -> String {
    match kind {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => format!("{len} fields where the header has {expected_len}"),
        csv::ErrorKind::Utf8 { err, .. } => format!("invalid UTF-8 in field {}", err.field() + 1),
        other => format!("{other:?}"),
    }
}

/// One data row with its position, for typed field access.
struct Row<'a> {
    file: &'a Path,
    line: u64,
    record: &'a csv::StringRecord,
}

impl Row<'_> {
    fn raw(&self, index: usize) -> &str {
        // The csv reader rejects rows whose length differs from the header's, so every
        // header index is present.
        self.record.get(index).unwrap_or("").trim()
    }

    fn error(&self, field: &'static str, value: &str, reason: impl Into<String>) -> DataError {
        DataError::Field {
            file: self.file.to_path_buf(),
            line: self.line,
            field,
            value: value.to_owned(),
            reason: reason.into(),
        }
    }

    fn text(&self, index: usize, field: &'static str) -> Result<String, DataError> {
        let value = self.raw(index);
        if value.is_empty() || value == "NA" {
            return Err(self.error(field, value, "a value is required"));
        }
        Ok(value.to_owned())
    }

    fn time(&self, index: usize, field: &'static str) -> Result<Option<DateTime>, DataError> {
        let value = self.raw(index);
        if value == "NA" {
            return Ok(None);
        }
        value
            .parse::<DateTime>()
            .map(Some)
            .map_err(|e| self.error(field, value, format!("not a date-time: {e}")))
    }

    /// A non-negative number with a decimal comma (a decimal point is accepted too).
    fn number(&self, index: usize, field: &'static str) -> Result<Option<f64>, DataError> {
        let value = self.raw(index);
        if value == "NA" {
            return Ok(None);
        }
        let parsed: f64 = value
            .replace(',', ".")
            .parse()
            .map_err(|_| self.error(field, value, "not a number"))?;
        if !parsed.is_finite() || parsed < 0.0 {
            return Err(self.error(field, value, "must be a finite number ≥ 0"));
        }
        Ok(Some(parsed))
    }
}

/// Reads `sessions.csv` (Dataset 1). Session ids must be unique.
pub fn read_sessions(file: &Path) -> Result<Vec<SessionRow>, DataError> {
    let mut table = Table::open(file)?;
    let location = table.column("location")?;
    let user_id = table.column("user_id")?;
    let session_id = table.column("session_id")?;
    let plugin = table.column("plugin_time")?;
    let plugout = table.column("plugout_time")?;
    let energy = table.column("energy_session")?;
    let mut rows = Vec::new();
    let mut seen: HashMap<String, u64> = HashMap::new();
    table.rows(|row| {
        let parsed = SessionRow {
            line: row.line,
            location: row.text(location, "location")?,
            user_id: row.text(user_id, "user_id")?,
            session_id: row.text(session_id, "session_id")?,
            plugin: row.time(plugin, "plugin_time")?,
            plugout: row.time(plugout, "plugout_time")?,
            energy_kwh: row.number(energy, "energy_session")?,
        };
        if let Some(first) = seen.insert(parsed.session_id.clone(), row.line) {
            return Err(row.error(
                "session_id",
                &parsed.session_id,
                format!("duplicate of line {first}"),
            ));
        }
        rows.push(parsed);
        Ok(())
    })?;
    Ok(rows)
}

/// Reads `users.csv` (Dataset 2), keyed by user id. User ids must be unique.
pub fn read_users(file: &Path) -> Result<HashMap<String, UserRow>, DataError> {
    let mut table = Table::open(file)?;
    let user_id = table.column("user_id")?;
    let power = table.column("charging_power")?;
    let battery = table.column("battery_capacity")?;
    let mut users = HashMap::new();
    table.rows(|row| {
        let parsed = UserRow {
            line: row.line,
            user_id: row.text(user_id, "user_id")?,
            charging_power_kw: row.number(power, "charging_power")?,
            battery_kwh: row.number(battery, "battery_capacity")?,
        };
        if parsed.charging_power_kw == Some(0.0) {
            let raw = row.raw(power).to_owned();
            return Err(row.error("charging_power", &raw, "must be > 0"));
        }
        if let Some(first) = users.get(&parsed.user_id).map(|u: &UserRow| u.line) {
            return Err(row.error(
                "user_id",
                &parsed.user_id,
                format!("duplicate of line {first}"),
            ));
        }
        users.insert(parsed.user_id.clone(), parsed);
        Ok(())
    })?;
    Ok(users)
}

/// Reads `SoC_start` (percent) per session id from `sessions_soc.csv` (Dataset 3); sessions
/// whose value is `NA` are left out.
pub fn read_soc_start(file: &Path) -> Result<HashMap<String, f64>, DataError> {
    let mut table = Table::open(file)?;
    let session_id = table.column("session_id")?;
    let soc_start = table.column("SoC_start")?;
    let mut socs = HashMap::new();
    table.rows(|row| {
        let id = row.text(session_id, "session_id")?;
        if let Some(pct) = row.number(soc_start, "SoC_start")? {
            if pct > 100.0 {
                let raw = row.raw(soc_start).to_owned();
                return Err(row.error("SoC_start", &raw, "a percentage must be ≤ 100"));
            }
            socs.insert(id, pct);
        }
        Ok(())
    })?;
    Ok(socs)
}
