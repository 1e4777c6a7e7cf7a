-- Taken before fan-out while any endpoint is ordered: fan-outs then happen
-- one at a time across replicas, so a key's later event can never become
-- visible (and be sent) before an earlier one still being fanned out
-- elsewhere. Released at commit. 7_368_002 is tailhook's fan-out lock key.
SELECT pg_advisory_xact_lock(7368002::bigint)
