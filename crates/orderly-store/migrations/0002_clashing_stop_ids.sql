-- A StopTransaction may name a transactionId that belongs to ANOTHER charger (a charger moved
-- from another central system, a restored database). Refusing it would make the charger replay it
-- forever, so it is recorded under a fresh id; reported_id keeps the id the charger used, so a
-- replay of the same stop is recognised and the charger's own records can be matched.
ALTER TABLE transactions ADD COLUMN reported_id BIGINT;
CREATE INDEX transactions_by_reported_id ON transactions (charger_id, reported_id);
