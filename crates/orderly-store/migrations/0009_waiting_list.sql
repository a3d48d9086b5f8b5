-- Waiting list for a community's public chargers (issue 5, clause 十二): residents queue with one
-- of their id tags; when a connector of a public charger is free, the first in the queue gets an
-- offer that holds it for the community's hold time. Entries are kept after they end (served,
-- expired, left) as the record of who was told what. Same rules as 0001.

CREATE TABLE waiting_list (
    id                  BIGINT PRIMARY KEY,
    community_id        TEXT NOT NULL REFERENCES communities (id) ON DELETE CASCADE,
    user_id             TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    id_tag              TEXT NOT NULL,
    -- waiting → offered → served | expired; waiting/offered → left (withdrawn or removed) or
    -- served (started on a public charger of the community before or without an offer).
    state               TEXT NOT NULL CHECK (state IN ('waiting', 'offered', 'served', 'expired', 'left')),
    joined_at_ms        BIGINT NOT NULL,
    offer_charger_id    TEXT,
    offer_connector_id  BIGINT,
    offered_at_ms       BIGINT,
    offer_expires_at_ms BIGINT,
    closed_at_ms        BIGINT,
    -- The transaction that served the entry.
    transaction_id      BIGINT,
    closed_by           TEXT
);
-- One live entry per user and community (the writer checks first and answers 409; this is the
-- backstop). Partial indexes are in both SQLite and PostgreSQL.
CREATE UNIQUE INDEX waiting_list_live ON waiting_list (community_id, user_id)
    WHERE state IN ('waiting', 'offered');
CREATE INDEX waiting_list_by_community ON waiting_list (community_id, state, id);
CREATE INDEX waiting_list_offers ON waiting_list (state, offer_expires_at_ms);
INSERT INTO id_sequences (name, next_id) VALUES ('waiting_list', 1);

-- How long an offer holds a connector, per community (absent: the server's default).
CREATE TABLE waiting_list_settings (
    community_id   TEXT PRIMARY KEY REFERENCES communities (id) ON DELETE CASCADE,
    hold_minutes   BIGINT NOT NULL,
    updated_at_ms  BIGINT NOT NULL
);
