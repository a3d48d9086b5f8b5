-- Parking and charging together (issue 5, policy clause 十二): what bay sensors, ground locks and
-- plate cameras report, each bay's current state for the rules (orderly-parking), idle episodes
-- (a car not charging in an EV-only bay, an EV left after charging) with their fees, and each
-- community's rule. Money in fen (0.01 CNY), integers, so fees add up exactly.

CREATE TABLE parking_rules (
    community_id          TEXT PRIMARY KEY REFERENCES communities (id) ON DELETE CASCADE,
    not_charging_minutes  BIGINT NOT NULL,
    grace_minutes         BIGINT NOT NULL,
    fee_per_interval_fen  BIGINT NOT NULL,
    interval_minutes      BIGINT NOT NULL,
    cap_fen               BIGINT NOT NULL,
    updated_by            TEXT NOT NULL,
    updated_at_ms         BIGINT NOT NULL
);

-- Every occupancy report as received (webhook or MQTT), in order per bay.
CREATE TABLE occupancy_events (
    id              BIGINT PRIMARY KEY,
    bay_id          BIGINT NOT NULL REFERENCES parking_bays (id) ON DELETE CASCADE,
    occupied        BIGINT NOT NULL,
    vehicle         TEXT NOT NULL CHECK (vehicle IN ('ev', 'fuel', 'unknown')),
    plate           TEXT,
    source          TEXT NOT NULL CHECK (source IN ('sensor', 'ground_lock', 'camera')),
    at_ms           BIGINT NOT NULL,
    received_at_ms  BIGINT NOT NULL
);
CREATE INDEX occupancy_events_by_bay ON occupancy_events (bay_id, id);
INSERT INTO id_sequences (name, next_id) VALUES ('occupancy_events', 1);

-- A bay's current state: the readable part in columns, the rules' own state (orderly-parking's
-- BayState, JSON) in `rules_state`, written in the same commit as the event that changed it.
CREATE TABLE bay_parking_state (
    bay_id            BIGINT PRIMARY KEY REFERENCES parking_bays (id) ON DELETE CASCADE,
    occupied          BIGINT NOT NULL,
    vehicle           TEXT,
    plate             TEXT,
    since_ms          BIGINT,
    connector_status  TEXT,
    rules_state       TEXT NOT NULL,
    updated_at_ms     BIGINT NOT NULL
);
CREATE INDEX bay_parking_state_occupied ON bay_parking_state (occupied);

-- An idle episode: open while the car stays, settled when it leaves or charges again.
CREATE TABLE idle_episodes (
    id               BIGINT PRIMARY KEY,
    bay_id           BIGINT NOT NULL REFERENCES parking_bays (id) ON DELETE CASCADE,
    community_id     TEXT NOT NULL,
    kind             TEXT NOT NULL CHECK (kind IN ('not_charging', 'overstay')),
    vehicle          TEXT NOT NULL,
    plate            TEXT,
    charger_id       TEXT,
    -- Who pays: the user of the finished transaction's id tag, when known.
    payer            TEXT,
    since_ms         BIGINT NOT NULL,
    opened_at_ms     BIGINT NOT NULL,
    ended_at_ms      BIGINT,
    state            TEXT NOT NULL CHECK (state IN ('open', 'settled')),
    fee_fen          BIGINT NOT NULL,
    cap_fen          BIGINT NOT NULL,
    notification_id  BIGINT
);
CREATE INDEX idle_episodes_by_community ON idle_episodes (community_id, id);
CREATE INDEX idle_episodes_by_payer ON idle_episodes (payer, id);
CREATE INDEX idle_episodes_open ON idle_episodes (bay_id, state);
INSERT INTO id_sequences (name, next_id) VALUES ('idle_episodes', 1);
