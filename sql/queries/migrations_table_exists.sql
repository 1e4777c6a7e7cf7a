-- Whether any migration was ever recorded here (reading only: printing the
-- pending steps creates nothing).
SELECT to_regclass('tailhook.schema_migrations') IS NOT NULL
