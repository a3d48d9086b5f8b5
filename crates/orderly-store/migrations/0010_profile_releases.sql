-- Chargers that left a community (detached) and may still hold the controller's charging
-- profiles: the daily fallback (TxDefaultProfile) and ChargePointMaxProfile recur, so left in
-- place they would limit the charger for ever. The server clears them (ClearChargingProfile)
-- at once when the charger is connected, else at its next boot; the row goes when that is
-- confirmed, or when the charger joins a community again (whose controller sends its own).

CREATE TABLE profile_releases (
    charger_id      TEXT PRIMARY KEY REFERENCES chargers (id) ON DELETE CASCADE,
    community_id    TEXT NOT NULL,
    requested_at_ms BIGINT NOT NULL
);
