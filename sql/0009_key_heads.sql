-- tailhook schema, version 9: an ordered endpoint's keys are found by their
-- heads, never by reading the deliveries waiting behind them.
-- Plain SQL, safe to re-run.
--
-- A keyed delivery to an ordered endpoint that waits behind an older
-- unfinished delivery of its key has no next_attempt_at (NULL): it is not due
-- yet, so due claims, which read deliveries_due (endpoint_id, next_attempt_at)
-- only up to now(), never read it, however long the backlog behind a head in
-- backoff. The fan-out inserts it so (sql/queries/dispatch.sql); when the
-- delivery ahead of it finishes (succeeded, failed, or cancelled by anyone)
-- or is deleted, the trigger below makes the key's new head due at once.
-- Whether a scheduled delivery may really go is still decided by the claim's
-- head check; these NULLs only keep the waiting ones out of its way.

-- Writes wait while this runs, so no head can finish between the upgrade
-- below and the trigger taking effect (its new head would be left waiting).
LOCK TABLE tailhook.deliveries IN SHARE MODE;

-- Deliveries written before this version that wait behind an older one.
UPDATE tailhook.deliveries d
   SET next_attempt_at = NULL
 WHERE d.ordering_key IS NOT NULL
   AND d.status = 'pending'
   AND d.next_attempt_at IS NOT NULL
   AND (d.locked_until IS NULL OR d.locked_until < now())
   AND EXISTS (SELECT 1 FROM tailhook.deliveries h
                WHERE h.endpoint_id = d.endpoint_id AND h.ordering_key = d.ordering_key
                  AND h.status IN ('pending', 'retrying') AND h.outbox_id < d.outbox_id);

-- The index the due claim reads these through, deliveries_keyed_scheduled,
-- is built without blocking writes by 0010_concurrent_indexes.sql.

-- A scheduled keyed delivery finished or went: the oldest unfinished delivery
-- of its key, if it was waiting, is due now. Row triggers limited by WHEN, so
-- only such a head's change calls it (never an unkeyed delivery's, nor a
-- waiting one's: cancelling a whole backlog calls it once per key).
CREATE OR REPLACE FUNCTION tailhook.schedule_key_head() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE tailhook.deliveries d
       SET next_attempt_at = now()
     WHERE d.id = (SELECT h.id FROM tailhook.deliveries h
                    WHERE h.endpoint_id = OLD.endpoint_id AND h.ordering_key = OLD.ordering_key
                      AND h.status IN ('pending', 'retrying')
                    ORDER BY h.outbox_id
                    LIMIT 1)
       AND d.next_attempt_at IS NULL;
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS deliveries_key_head_finished ON tailhook.deliveries;
CREATE TRIGGER deliveries_key_head_finished
    AFTER UPDATE OF status ON tailhook.deliveries
    FOR EACH ROW
    WHEN (OLD.ordering_key IS NOT NULL AND OLD.next_attempt_at IS NOT NULL
          AND OLD.status IN ('pending', 'retrying') AND NEW.status NOT IN ('pending', 'retrying'))
    EXECUTE FUNCTION tailhook.schedule_key_head();

DROP TRIGGER IF EXISTS deliveries_key_head_deleted ON tailhook.deliveries;
CREATE TRIGGER deliveries_key_head_deleted
    AFTER DELETE ON tailhook.deliveries
    FOR EACH ROW
    WHEN (OLD.ordering_key IS NOT NULL AND OLD.next_attempt_at IS NOT NULL
          AND OLD.status IN ('pending', 'retrying'))
    EXECUTE FUNCTION tailhook.schedule_key_head();
