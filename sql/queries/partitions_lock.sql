-- Partition maintenance (creating periods ahead, dropping old ones) runs on
-- one replica at a time: each of its transactions first takes this
-- transaction-level advisory lock, without waiting (false: another replica
-- is at it; this one skips its turn). 7_368_004 is tailhook's partition key
-- (7_368_001: migrations, 7_368_002: fan-out, 7_368_003: retention,
-- 7_368_005 with a bucket: event_id uniqueness, sql/0031_partitions.sql).
-- The transaction's statements then run without JIT, as retention's do
-- (see retention_lock.sql).
SELECT pg_try_advisory_xact_lock(7368004::bigint), set_config('jit', 'off', true)
