-- At graceful shutdown, after its leases are released: this replica is gone.
-- $1 replica id
DELETE FROM tailhook.replicas WHERE name = $1::text
