-- For the statements the pipeline runs all the time (claims, result writes,
-- breaker bookkeeping), in their own transaction: use the plan made once
-- per connection. Their parameters are arrays, and a custom plan for a batch
-- of one or two looks cheaper than the generic plan's guess of ten rows, so
-- PostgreSQL would otherwise plan them afresh on nearly every call. Measured
-- at 1,000 events/s: 0.5-1.2 ms of planning per call against 0.05-0.3 ms of
-- execution. The plans are made again as the tables grow (src/db/mod.rs).
SET LOCAL plan_cache_mode = force_generic_plan
