-- The closed loop (issue 4): communities and their chargers' electrical facts, residents' wishes,
-- grid load-control commands with their reports, and chargers' compliance changes. Same rules as
-- 0001: the SQLite/PostgreSQL common subset, times as BIGINT ms, JSON as TEXT, flags as BIGINT 0/1.

CREATE TABLE communities (
    id                           TEXT PRIMARY KEY,
    name                         TEXT,
    rating_kva                   DOUBLE PRECISION NOT NULL,
    power_factor                 DOUBLE PRECISION NOT NULL,
    -- JSON array of 24 kW values, index = local clock hour.
    base_load_kw                 TEXT NOT NULL,
    timezone                     TEXT NOT NULL,
    -- JSON array of 24 CNY/kWh values, index = local clock hour.
    tariff_cny_per_kwh           TEXT NOT NULL,
    emergency_price_cny_per_kwh  DOUBLE PRECISION NOT NULL,
    max_emergencies              BIGINT,
    default_stay_hours           DOUBLE PRECISION NOT NULL,
    default_energy_kwh           DOUBLE PRECISION NOT NULL,
    -- The charger id whose meter measures the whole community (base-load learning), if any.
    community_meter              TEXT,
    created_at_ms                BIGINT NOT NULL,
    updated_at_ms                BIGINT NOT NULL
);

-- A charger belongs to at most one community. Removing the charger removes this row; a community
-- with chargers attached cannot be removed (the store answers Conflict before the FK would).
CREATE TABLE charger_electrical (
    charger_id     TEXT PRIMARY KEY REFERENCES chargers (id) ON DELETE CASCADE,
    community_id   TEXT NOT NULL REFERENCES communities (id),
    phases         BIGINT NOT NULL CHECK (phases IN (1, 3)),
    voltage_v      DOUBLE PRECISION NOT NULL,
    max_current_a  DOUBLE PRECISION NOT NULL,
    min_current_a  DOUBLE PRECISION NOT NULL,
    rate_unit      TEXT NOT NULL CHECK (rate_unit IN ('amperes', 'watts')),
    updated_at_ms  BIGINT NOT NULL
);
CREATE INDEX charger_electrical_by_community ON charger_electrical (community_id);

-- What a resident said for one transaction (every field optional; the server resolves the rest).
-- No FK: transactions are accounting records without one either.
CREATE TABLE transaction_wishes (
    transaction_id      BIGINT PRIMARY KEY,
    departure_ms        BIGINT,
    stay_hours          DOUBLE PRECISION,
    energy_kwh          DOUBLE PRECISION,
    target_soc_percent  DOUBLE PRECISION,
    battery_kwh         DOUBLE PRECISION,
    emergency           BIGINT NOT NULL DEFAULT 0,
    updated_at_ms       BIGINT NOT NULL
);

-- A resident's defaults for every session started with this id tag.
CREATE TABLE id_tag_wish_defaults (
    tag              TEXT PRIMARY KEY,
    -- Local clock time "HH:MM" in the community's time zone.
    departure_local  TEXT,
    stay_hours       DOUBLE PRECISION,
    energy_kwh       DOUBLE PRECISION,
    updated_at_ms    BIGINT NOT NULL
);

CREATE TABLE grid_commands (
    id              BIGINT PRIMARY KEY,
    community_id    TEXT NOT NULL REFERENCES communities (id) ON DELETE CASCADE,
    kind            TEXT NOT NULL CHECK (kind IN ('limit', 'reduce')),
    kw              DOUBLE PRECISION NOT NULL,
    start_ms        BIGINT NOT NULL,
    end_ms          BIGINT NOT NULL,
    received_ms     BIGINT NOT NULL,
    -- JSON of orderly_grid::CommandSource.
    source          TEXT NOT NULL,
    -- Identity of the command at its source (e.g. OpenADR "vtn/event"), so a re-delivered event
    -- updates its record instead of creating a second one. NULL for API commands.
    source_key      TEXT UNIQUE,
    cancelled_at_ms BIGINT,
    -- JSON of the latest orderly_grid::CommandReport, NULL until the controller sends one.
    report          TEXT,
    report_at_ms    BIGINT
);
CREATE INDEX grid_commands_by_community ON grid_commands (community_id, start_ms);
INSERT INTO id_sequences (name, next_id) VALUES ('grid_commands', 1);

CREATE TABLE compliance_events (
    id            BIGINT PRIMARY KEY,
    charger_id    TEXT NOT NULL,
    community_id  TEXT,
    compliant     BIGINT NOT NULL,
    at_ms         BIGINT NOT NULL,
    detail        TEXT NOT NULL
);
CREATE INDEX compliance_events_by_charger ON compliance_events (charger_id, at_ms);
INSERT INTO id_sequences (name, next_id) VALUES ('compliance_events', 1);
