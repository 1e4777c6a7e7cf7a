-- Retention runs on one replica at a time: each of its transactions first
-- takes this transaction-level advisory lock, without waiting (false: another
-- replica is deleting; this one skips its turn). 7_368_003 is tailhook's
-- retention key (7_368_001: migrations, 7_368_002: fan-out).
-- The transaction's statements then run without JIT (set_config local to
-- the transaction, so it holds through PgBouncer in transaction mode too):
-- their generic plans over many partitions cost past jit_above_cost, and
-- compiling them took seconds a call for work of milliseconds (bench
-- sustained: retention's batch 8 s a call, all of it in LLVM).
SELECT pg_try_advisory_xact_lock(7368003::bigint), set_config('jit', 'off', true)
