-- Orderly schema, version 1. Runs unchanged on SQLite and PostgreSQL through sqlx Any, so it uses
-- only the common subset: TEXT, BIGINT, DOUBLE PRECISION, no SERIAL/AUTOINCREMENT (ids come from
-- id_sequences), no BOOLEAN. Times are BIGINT milliseconds since the Unix epoch (UTC), columns
-- suffixed _ms: the Any driver has no date/time type, and integers sort and compare the same on
-- both backends. Never edit this file once committed: add a new migration instead.

CREATE TABLE id_sequences (
    name    TEXT PRIMARY KEY,
    next_id BIGINT NOT NULL
);
INSERT INTO id_sequences (name, next_id) VALUES ('transactions', 1);
INSERT INTO id_sequences (name, next_id) VALUES ('audit_log', 1);
INSERT INTO id_sequences (name, next_id) VALUES ('status_history', 1);

CREATE TABLE chargers (
    id                        TEXT PRIMARY KEY,
    password_hash             TEXT,
    status                    TEXT NOT NULL CHECK (status IN ('registered', 'pending')),
    description               TEXT,
    vendor                    TEXT,
    model                     TEXT,
    serial_number             TEXT,
    charge_box_serial_number  TEXT,
    firmware_version          TEXT,
    iccid                     TEXT,
    imsi                      TEXT,
    meter_type                TEXT,
    meter_serial_number       TEXT,
    firmware_status           TEXT,
    firmware_status_at_ms     BIGINT,
    diagnostics_status        TEXT,
    diagnostics_status_at_ms  BIGINT,
    created_at_ms             BIGINT NOT NULL,
    registered_at_ms          BIGINT,
    last_boot_at_ms           BIGINT,
    last_seen_at_ms           BIGINT
);

CREATE TABLE connectors (
    charger_id         TEXT NOT NULL REFERENCES chargers (id) ON DELETE CASCADE,
    connector_id       BIGINT NOT NULL,
    status             TEXT NOT NULL,
    error_code         TEXT NOT NULL,
    info               TEXT,
    vendor_id          TEXT,
    vendor_error_code  TEXT,
    updated_at_ms      BIGINT NOT NULL,
    PRIMARY KEY (charger_id, connector_id)
);

CREATE TABLE status_history (
    id                 BIGINT PRIMARY KEY,
    charger_id         TEXT NOT NULL REFERENCES chargers (id) ON DELETE CASCADE,
    connector_id       BIGINT NOT NULL,
    status             TEXT NOT NULL,
    error_code         TEXT NOT NULL,
    info               TEXT,
    vendor_id          TEXT,
    vendor_error_code  TEXT,
    timestamp_ms       BIGINT NOT NULL,
    received_at_ms     BIGINT NOT NULL
);
CREATE INDEX status_history_by_charger ON status_history (charger_id, timestamp_ms);

CREATE TABLE id_tags (
    tag            TEXT PRIMARY KEY,
    status         TEXT NOT NULL,
    expiry_ms      BIGINT,
    parent_tag     TEXT,
    created_at_ms  BIGINT NOT NULL,
    updated_at_ms  BIGINT NOT NULL
);

-- Transactions are accounting records: no foreign key to chargers, so removing a charger keeps its
-- history. A row learned only from a StopTransaction has NULL start columns (origin = 'stop').
CREATE TABLE transactions (
    id               BIGINT PRIMARY KEY,
    charger_id       TEXT NOT NULL,
    connector_id     BIGINT,
    id_tag           TEXT,
    id_tag_status    TEXT,
    meter_start_wh   BIGINT,
    started_at_ms    BIGINT,
    reservation_id   BIGINT,
    meter_stop_wh    BIGINT,
    stopped_at_ms    BIGINT,
    stop_reason      TEXT,
    stop_id_tag      TEXT,
    origin           TEXT NOT NULL CHECK (origin IN ('start', 'stop')),
    created_at_ms    BIGINT NOT NULL
);
-- The identity of a StartTransaction: a replay with the same values finds the same row.
CREATE UNIQUE INDEX transactions_start_key
    ON transactions (charger_id, connector_id, id_tag, meter_start_wh, started_at_ms);
CREATE INDEX transactions_by_charger ON transactions (charger_id, stopped_at_ms);

-- One row per sampled value. The primary key is the sample's identity, so a replayed MeterValues
-- (or the same sample again in transactionData) is stored once. Optional OCPP fields are stored
-- with their OCPP defaults ('' for no phase) so the key has no NULLs.
CREATE TABLE meter_values (
    charger_id      TEXT NOT NULL,
    connector_id    BIGINT NOT NULL,
    timestamp_ms    BIGINT NOT NULL,
    measurand       TEXT NOT NULL,
    phase           TEXT NOT NULL,
    location        TEXT NOT NULL,
    context         TEXT NOT NULL,
    transaction_id  BIGINT,
    unit            TEXT NOT NULL,
    format          TEXT NOT NULL,
    value_text      TEXT NOT NULL,
    value_num       DOUBLE PRECISION,
    received_at_ms  BIGINT NOT NULL,
    PRIMARY KEY (charger_id, connector_id, timestamp_ms, measurand, phase, location, context)
);
CREATE INDEX meter_values_by_transaction ON meter_values (transaction_id, timestamp_ms);

CREATE TABLE audit_log (
    id         BIGINT PRIMARY KEY,
    at_ms      BIGINT NOT NULL,
    actor      TEXT NOT NULL,
    action     TEXT NOT NULL,
    target     TEXT,
    request    TEXT NOT NULL,
    outcome    TEXT NOT NULL
);
CREATE INDEX audit_log_by_time ON audit_log (at_ms);

-- API bearer tokens, stored as SHA-256 of the token (tokens are 256-bit random, so a fast hash is
-- enough and keeps per-request verification cheap).
CREATE TABLE admin_tokens (
    token_hash     TEXT PRIMARY KEY,
    name           TEXT NOT NULL UNIQUE,
    created_at_ms  BIGINT NOT NULL
);
