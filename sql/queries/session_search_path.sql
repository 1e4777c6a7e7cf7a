-- Run on each new connection of tailhook's (the pool's, unless
-- `database.prepared_statements` is false, and the LISTEN connection's):
-- names in tailhook's statements resolve in pg_catalog only, never in a
-- schema another role may create objects in (a function there with a
-- closer argument type would otherwise be called instead of the built-in).
-- pg_temp last: temporary objects never shadow anything either.
SET search_path = pg_catalog, pg_temp
