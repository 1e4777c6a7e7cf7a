-- The console's search: where the newest page starts (above the highest
-- delivery id) and the lowest id there is, so paging knows when it has read
-- everything. Both ends of the primary key: two index probes.
SELECT coalesce(max(id), 0) + 1 AS above, coalesce(min(id), 1) AS lowest FROM tailhook.deliveries
