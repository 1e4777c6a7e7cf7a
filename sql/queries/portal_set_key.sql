-- The sidecar stores the tenant portal's link key at start (sql/0030), so
-- tailhook.portal_link signs with the key it checks links with.
-- $1 the link key as hex (32 bytes)
SELECT tailhook.set_portal_key(pg_catalog.decode($1::text, 'hex'))
