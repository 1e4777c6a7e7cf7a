-- For the statements the pipeline runs all the time (claims, result writes,
-- breaker bookkeeping), in their own transaction: use the plan made once
-- per connection. Their parameters are arrays, and a custom plan for a batch
-- of one or two looks cheaper than the generic plan's guess of ten rows, so
-- PostgreSQL would otherwise plan them afresh on nearly every call. Measured
-- at 1,000 events/s: 0.5-1.2 ms of planning per call against 0.05-0.3 ms of
-- execution. The plans are made again as the tables grow (src/db/mod.rs).
SET LOCAL plan_cache_mode = force_generic_plan;
-- Index probes priced for pages in memory (the hot rows these statements
-- touch always are; the default prices a disk seek). With the default, a
-- plan made while the tables hold a few thousand rows reads them whole by a
-- hash join where a primary-key probe belongs, and each claim and result
-- write grows dearer until the next replan: at 1,000 events/s the plans made
-- at 1,024 and 2,048 rows fanned out did, and the fan-out's median went from
-- 0.48-0.56 to 0.86-1.11 ms. Priced so, an index is chosen from about 1,000
-- rows on.
SET LOCAL random_page_cost = 1.1
