-- `tailhook demo`: removes its database (and any connection still open to it).
-- {database} as in demo_create_database.sql.
DROP DATABASE IF EXISTS {database} WITH (FORCE)
