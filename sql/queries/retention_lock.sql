-- Retention runs on one replica at a time: each of its transactions first
-- takes this transaction-level advisory lock, without waiting (false: another
-- replica is deleting; this one skips its turn). 7_368_003 is tailhook's
-- retention key (7_368_001: migrations, 7_368_002: fan-out).
SELECT pg_try_advisory_xact_lock(7368003::bigint)
