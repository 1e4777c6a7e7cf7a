-- A tenant's endpoints (ids and names), to keep a tenant-bound token's
-- search results and status to its own endpoints.
-- $1 tenant
SELECT e.id, e.name FROM tailhook.endpoints e WHERE e.tenant = $1::text
