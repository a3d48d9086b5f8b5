-- Sharing private chargers with neighbours (issue 5, policy clause 七): the owner's agreement per
-- charger (prices, the owner/operator split, priority, no-show and cancellation rules), the
-- availability windows the owner publishes, neighbours' bookings inside them, and one settlement
-- per booking (a charging session, a no-show or a late cancellation). Same rules as 0001. Money
-- that is charged is kept in fen (BIGINT, exact); prices per kWh and per hour stay CNY as given
-- (tariffs often have sub-fen precision).

CREATE TABLE sharing_agreements (
    charger_id           TEXT PRIMARY KEY REFERENCES chargers (id) ON DELETE CASCADE,
    price_per_kwh_cny    DOUBLE PRECISION NOT NULL,
    price_per_hour_cny   DOUBLE PRECISION,
    -- The owner's share of each settlement; the rest is the operator's.
    owner_share_percent  DOUBLE PRECISION NOT NULL,
    operator             TEXT NOT NULL,
    -- 1: the owner's own car keeps priority over a booking that has not started.
    owner_priority       BIGINT NOT NULL,
    no_show_grace_min    BIGINT NOT NULL,
    no_show_fee_fen      BIGINT NOT NULL,
    cancel_notice_min    BIGINT NOT NULL,
    late_cancel_fee_fen  BIGINT NOT NULL,
    created_at_ms        BIGINT NOT NULL,
    updated_at_ms        BIGINT NOT NULL
);

CREATE TABLE sharing_windows (
    id             BIGINT PRIMARY KEY,
    charger_id     TEXT NOT NULL REFERENCES chargers (id) ON DELETE CASCADE,
    start_ms       BIGINT NOT NULL,
    end_ms         BIGINT NOT NULL,
    created_at_ms  BIGINT NOT NULL
);
CREATE INDEX sharing_windows_by_charger ON sharing_windows (charger_id, start_ms);
INSERT INTO id_sequences (name, next_id) VALUES ('sharing_windows', 1);

-- A booking keeps the agreement's terms as they were when it was made (`terms`, JSON): a later
-- price change does not reprice it. No FK on window_id: a removed window keeps its bookings'
-- history.
CREATE TABLE sharing_bookings (
    id              BIGINT PRIMARY KEY,
    window_id       BIGINT NOT NULL,
    charger_id      TEXT NOT NULL REFERENCES chargers (id) ON DELETE CASCADE,
    owner_user_id   TEXT,
    community_id    TEXT,
    booker          TEXT NOT NULL,
    id_tag          TEXT NOT NULL,
    start_ms        BIGINT NOT NULL,
    end_ms          BIGINT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('pending', 'active', 'completed', 'cancelled',
                                                   'no_show', 'bumped')),
    terms           TEXT NOT NULL,
    transaction_id  BIGINT,
    cancelled_by    TEXT,
    created_at_ms   BIGINT NOT NULL,
    updated_at_ms   BIGINT NOT NULL
);
CREATE INDEX sharing_bookings_by_charger ON sharing_bookings (charger_id, state, start_ms);
CREATE INDEX sharing_bookings_by_booker ON sharing_bookings (booker);
CREATE INDEX sharing_bookings_by_transaction ON sharing_bookings (transaction_id);
INSERT INTO id_sequences (name, next_id) VALUES ('sharing_bookings', 1);

-- One per booking at most. Owner, operator and community are copied from the booking so a
-- statement does not change when the charger changes hands later.
CREATE TABLE sharing_settlements (
    id                  BIGINT PRIMARY KEY,
    booking_id          BIGINT NOT NULL UNIQUE,
    kind                TEXT NOT NULL CHECK (kind IN ('session', 'no_show', 'late_cancel')),
    charger_id          TEXT NOT NULL,
    community_id        TEXT,
    owner_user_id       TEXT,
    operator            TEXT NOT NULL,
    booker              TEXT NOT NULL,
    transaction_id      BIGINT,
    at_ms               BIGINT NOT NULL,
    energy_wh           BIGINT NOT NULL,
    duration_ms         BIGINT NOT NULL,
    energy_fee_fen      BIGINT NOT NULL,
    time_fee_fen        BIGINT NOT NULL,
    fee_fen             BIGINT NOT NULL,
    total_fen           BIGINT NOT NULL,
    owner_share_fen     BIGINT NOT NULL,
    operator_share_fen  BIGINT NOT NULL
);
CREATE INDEX sharing_settlements_by_owner ON sharing_settlements (owner_user_id, at_ms);
INSERT INTO id_sequences (name, next_id) VALUES ('sharing_settlements', 1);
