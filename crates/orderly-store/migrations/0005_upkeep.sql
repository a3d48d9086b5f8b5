-- Insurance and upkeep (issue 5, clauses 十 and 十一): insurance policies per charger, who maintains
-- each charger, fault reports from people (OCPP errors are read from status_history), and the
-- property manager's inspection rounds with findings and their follow-up. Same rules as 0001.

CREATE TABLE insurance_policies (
    id              BIGINT PRIMARY KEY,
    charger_id      TEXT NOT NULL REFERENCES chargers (id) ON DELETE CASCADE,
    -- product_liability: the manufacturer's; charging_safety: the owner's or operator's.
    kind            TEXT NOT NULL CHECK (kind IN ('product_liability', 'charging_safety')),
    insurer         TEXT NOT NULL,
    number          TEXT NOT NULL,
    holder          TEXT NOT NULL,
    coverage_cny    DOUBLE PRECISION NOT NULL,
    start_ms        BIGINT NOT NULL,
    end_ms          BIGINT NOT NULL,
    created_at_ms   BIGINT NOT NULL,
    UNIQUE (insurer, number)
);
CREATE INDEX insurance_policies_by_charger ON insurance_policies (charger_id, kind, end_ms);
INSERT INTO id_sequences (name, next_id) VALUES ('insurance_policies', 1);

-- Who is responsible for maintaining the charger (a company or a person, as text).
ALTER TABLE charger_registry ADD COLUMN maintainer TEXT;

CREATE TABLE fault_reports (
    id              BIGINT PRIMARY KEY,
    charger_id      TEXT NOT NULL REFERENCES chargers (id) ON DELETE CASCADE,
    connector_id    BIGINT,
    reported_by     TEXT NOT NULL,
    description     TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('open', 'resolved')),
    resolution      TEXT,
    created_at_ms   BIGINT NOT NULL,
    resolved_at_ms  BIGINT
);
CREATE INDEX fault_reports_by_charger ON fault_reports (charger_id, state);
INSERT INTO id_sequences (name, next_id) VALUES ('fault_reports', 1);

CREATE TABLE inspections (
    id              BIGINT PRIMARY KEY,
    community_id    TEXT NOT NULL REFERENCES communities (id) ON DELETE CASCADE,
    inspector       TEXT NOT NULL,
    at_ms           BIGINT NOT NULL,
    notes           TEXT,
    created_at_ms   BIGINT NOT NULL
);
CREATE INDEX inspections_by_community ON inspections (community_id, at_ms);
INSERT INTO id_sequences (name, next_id) VALUES ('inspections', 1);

CREATE TABLE inspection_findings (
    id              BIGINT PRIMARY KEY,
    inspection_id   BIGINT NOT NULL REFERENCES inspections (id) ON DELETE CASCADE,
    charger_id      TEXT,
    severity        TEXT NOT NULL CHECK (severity IN ('info', 'minor', 'major', 'critical')),
    description     TEXT NOT NULL,
    due_ms          BIGINT,
    state           TEXT NOT NULL CHECK (state IN ('open', 'done')),
    follow_up       TEXT,
    closed_at_ms    BIGINT
);
CREATE INDEX inspection_findings_by_inspection ON inspection_findings (inspection_id);
INSERT INTO id_sequences (name, next_id) VALUES ('inspection_findings', 1);
