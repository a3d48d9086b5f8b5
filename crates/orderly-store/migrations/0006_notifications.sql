-- Notifications (issue 5): what the service tells people (a car idle in an EV bay, a charger
-- free for the next on the waiting list, insurance ending, a booking cancelled). Written as an
-- outbox in the same transaction as the change that causes them, then delivered by the
-- server's dispatcher to the configured notifiers (log, webhook); nothing is lost if a notifier
-- is down. `dedupe_key` makes "tell once" rules (one alert per policy and threshold) idempotent.

CREATE TABLE notifications (
    id               BIGINT PRIMARY KEY,
    created_at_ms    BIGINT NOT NULL,
    kind             TEXT NOT NULL,
    -- The user it is for (NULL: the community's staff, e.g. the property manager).
    recipient        TEXT,
    community_id     TEXT,
    charger_id       TEXT,
    bay_id           BIGINT,
    message          TEXT NOT NULL,
    data             TEXT NOT NULL,
    dedupe_key       TEXT UNIQUE,
    delivered_at_ms  BIGINT,
    attempts         BIGINT NOT NULL DEFAULT 0,
    last_error       TEXT
);
CREATE INDEX notifications_pending ON notifications (delivered_at_ms, id);
CREATE INDEX notifications_by_recipient ON notifications (recipient, id);
CREATE INDEX notifications_by_community ON notifications (community_id, id);
INSERT INTO id_sequences (name, next_id) VALUES ('notifications', 1);
