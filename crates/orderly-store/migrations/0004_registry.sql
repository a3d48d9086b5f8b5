-- Registry, roles and tenancy (issue 5): users with roles and scopes, login sessions, districts
-- and the communities' registry facts, parking bays, chargers' registry facts and lifecycle,
-- ownership transfers, and the registry_events outbox the city-platform sync reads. Same rules as
-- 0001: the SQLite/PostgreSQL common subset, times as BIGINT ms, JSON as TEXT, flags as BIGINT 0/1.

-- People who log in. `id` is the login name; passwords are argon2 hashes like chargers'.
CREATE TABLE users (
    id             TEXT PRIMARY KEY,
    name           TEXT NOT NULL,
    password_hash  TEXT NOT NULL,
    role           TEXT NOT NULL CHECK (role IN ('resident', 'charger_owner', 'property_manager',
                                                 'operator', 'grid_aggregator', 'regulator', 'admin')),
    disabled       BIGINT NOT NULL DEFAULT 0,
    created_at_ms  BIGINT NOT NULL,
    updated_at_ms  BIGINT NOT NULL
);

-- Where a property manager, operator or grid aggregator may act: communities or whole districts.
-- No FK on target: a scope may name a district or community registered later.
CREATE TABLE user_scopes (
    user_id  TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind     TEXT NOT NULL CHECK (kind IN ('community', 'district')),
    target   TEXT NOT NULL,
    PRIMARY KEY (user_id, kind, target)
);

-- The id tags (cards, app tokens) a resident or charger owner charges with: what makes a
-- transaction "theirs".
CREATE TABLE user_id_tags (
    tag      TEXT PRIMARY KEY,
    user_id  TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE
);
CREATE INDEX user_id_tags_by_user ON user_id_tags (user_id);

-- Login sessions: SHA-256 of a random 256-bit token, like admin_tokens, with an expiry.
CREATE TABLE user_sessions (
    token_hash     TEXT PRIMARY KEY,
    user_id        TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at_ms  BIGINT NOT NULL,
    expires_at_ms  BIGINT NOT NULL
);
CREATE INDEX user_sessions_by_user ON user_sessions (user_id);

CREATE TABLE districts (
    id             TEXT PRIMARY KEY,
    name           TEXT NOT NULL,
    city           TEXT,
    created_at_ms  BIGINT NOT NULL,
    updated_at_ms  BIGINT NOT NULL
);

-- Registry facts of a community (0003 created the table with its transformer data).
ALTER TABLE communities ADD COLUMN address TEXT;
ALTER TABLE communities ADD COLUMN district_id TEXT REFERENCES districts (id);
ALTER TABLE communities ADD COLUMN property_manager TEXT;

CREATE TABLE parking_bays (
    id              BIGINT PRIMARY KEY,
    community_id    TEXT NOT NULL REFERENCES communities (id) ON DELETE CASCADE,
    number          TEXT NOT NULL,
    tenure          TEXT NOT NULL CHECK (tenure IN ('owned', 'leased', 'public')),
    lease_end_ms    BIGINT,
    -- The resident who owns or leases the bay (NULL for public bays).
    holder_user_id  TEXT REFERENCES users (id) ON DELETE SET NULL,
    ev_only         BIGINT NOT NULL DEFAULT 0,
    charger         TEXT NOT NULL CHECK (charger IN ('built', 'reserved', 'none')),
    created_at_ms   BIGINT NOT NULL,
    updated_at_ms   BIGINT NOT NULL,
    UNIQUE (community_id, number)
);
INSERT INTO id_sequences (name, next_id) VALUES ('parking_bays', 1);

-- A charger's registry facts; the OCPP identity is chargers.id. Removing the charger removes them.
CREATE TABLE charger_registry (
    charger_id       TEXT PRIMARY KEY REFERENCES chargers (id) ON DELETE CASCADE,
    community_id     TEXT REFERENCES communities (id) ON DELETE SET NULL,
    bay_id           BIGINT REFERENCES parking_bays (id) ON DELETE SET NULL,
    kind             TEXT NOT NULL CHECK (kind IN ('self_use', 'public', 'mobile')),
    owner_user_id    TEXT REFERENCES users (id) ON DELETE SET NULL,
    operator         TEXT,
    model            TEXT,
    rated_power_kw   DOUBLE PRECISION,
    phases           BIGINT,
    lifecycle        TEXT NOT NULL CHECK (lifecycle IN ('planned', 'installed', 'active',
                                                        'suspended', 'transferred', 'decommissioned')),
    lifecycle_at_ms  BIGINT NOT NULL,
    created_at_ms    BIGINT NOT NULL,
    updated_at_ms    BIGINT NOT NULL
);
CREATE INDEX charger_registry_by_community ON charger_registry (community_id);
CREATE INDEX charger_registry_by_owner ON charger_registry (owner_user_id);

-- The connectors a charger is built with (the OCPP `connectors` table holds their live status).
CREATE TABLE registry_connectors (
    charger_id    TEXT NOT NULL REFERENCES charger_registry (charger_id) ON DELETE CASCADE,
    connector_id  BIGINT NOT NULL,
    standard      TEXT NOT NULL,
    max_power_kw  DOUBLE PRECISION,
    PRIMARY KEY (charger_id, connector_id)
);

-- A change of owner takes effect only once the new owner accepts.
CREATE TABLE charger_transfers (
    id              BIGINT PRIMARY KEY,
    charger_id      TEXT NOT NULL REFERENCES chargers (id) ON DELETE CASCADE,
    from_user_id    TEXT,
    to_user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    state           TEXT NOT NULL CHECK (state IN ('pending', 'accepted', 'declined', 'cancelled')),
    requested_by    TEXT NOT NULL,
    created_at_ms   BIGINT NOT NULL,
    decided_at_ms   BIGINT
);
CREATE INDEX charger_transfers_by_charger ON charger_transfers (charger_id, state);
INSERT INTO id_sequences (name, next_id) VALUES ('charger_transfers', 1);

-- Outbox: every registry change, in commit order, for the city-platform sync to consume.
-- No FKs: events outlive what they describe.
CREATE TABLE registry_events (
    id            BIGINT PRIMARY KEY,
    at_ms         BIGINT NOT NULL,
    kind          TEXT NOT NULL,
    charger_id    TEXT,
    community_id  TEXT,
    payload       TEXT NOT NULL
);
INSERT INTO id_sequences (name, next_id) VALUES ('registry_events', 1);
