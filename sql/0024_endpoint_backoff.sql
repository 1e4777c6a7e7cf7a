-- tailhook schema, version 24: a retry schedule per endpoint. Plain SQL,
-- safe to re-run.
--
-- NULL: the configured default (`delivery.backoff_initial_ms`,
-- `delivery.backoff_max_ms`). The first retry waits backoff_initial_ms, each
-- further one twice as long, never more than backoff_max_ms (±20% jitter,
-- src/pipeline/schedule.rs). Equal values give a fixed delay. The same bounds
-- are checked by tailhook itself (src/config/rules.rs): keep them in step.
ALTER TABLE tailhook.endpoints ADD COLUMN IF NOT EXISTS backoff_initial_ms int;
ALTER TABLE tailhook.endpoints ADD COLUMN IF NOT EXISTS backoff_max_ms int;

-- NOT VALID, as in version 4: they hold for every row written from now on.
DO $$
DECLARE
    c record;
BEGIN
    FOR c IN SELECT * FROM (VALUES
        ('endpoints_backoff_initial_ms_positive', 'CHECK (backoff_initial_ms > 0)'),
        ('endpoints_backoff_initial_ms_max', 'CHECK (backoff_initial_ms <= 86400000)'),
        ('endpoints_backoff_max_ms_positive', 'CHECK (backoff_max_ms > 0)'),
        ('endpoints_backoff_max_ms_max', 'CHECK (backoff_max_ms <= 604800000)'),
        ('endpoints_backoff_max_ms_at_least_initial', 'CHECK (backoff_max_ms >= backoff_initial_ms)')
    ) AS v(name, def)
    LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint
                        WHERE conrelid = 'tailhook.endpoints'::regclass AND conname = c.name) THEN
            EXECUTE pg_catalog.format('ALTER TABLE tailhook.endpoints ADD CONSTRAINT %I %s NOT VALID', c.name, c.def);
        END IF;
    END LOOP;
END
$$;

COMMENT ON CONSTRAINT endpoints_backoff_initial_ms_positive ON tailhook.endpoints IS 'backoff_initial_ms must be greater than 0 (NULL: delivery.backoff_initial_ms)';
COMMENT ON CONSTRAINT endpoints_backoff_initial_ms_max ON tailhook.endpoints IS 'backoff_initial_ms must be at most 86400000 (one day)';
COMMENT ON CONSTRAINT endpoints_backoff_max_ms_positive ON tailhook.endpoints IS 'backoff_max_ms must be greater than 0 (NULL: delivery.backoff_max_ms)';
COMMENT ON CONSTRAINT endpoints_backoff_max_ms_max ON tailhook.endpoints IS 'backoff_max_ms must be at most 604800000 (seven days)';
COMMENT ON CONSTRAINT endpoints_backoff_max_ms_at_least_initial ON tailhook.endpoints IS 'backoff_max_ms must be at least backoff_initial_ms when both are set';
