-- tailhook schema, version 13: tailhook's own operational events.
-- Plain SQL, safe to re-run.
--
-- tailhook publishes into its own outbox, routed like any event:
--   tailhook.endpoint.disabled  410 Gone, or failing for days
--   tailhook.endpoint.paused    the circuit breaker paused it
--   tailhook.endpoint.resumed   a delivery succeeded after a pause
--   tailhook.delivery.failed    a delivery gave up for good
-- Their payloads name the endpoint ({"endpoint": {"id", "name", "tenant",
-- "host"}}) and the reason; never a secret, header or the URL's credentials,
-- path or query. They are off unless an endpoint subscribes: no row is
-- written unless an enabled endpoint without a tenant names them in its
-- event_types (`*` alone does not match `tailhook.` types), and an endpoint
-- never receives an event about itself (dispatch.sql skips the endpoint a
-- `tailhook.` event's payload.endpoint.id names).

-- `*` matches every type except tailhook's own (`tailhook.` types, but
-- `tailhook.test`): operational events go only to endpoints that ask for
-- them by name (`tailhook.*`, `tailhook.endpoint.*`, an exact type).
CREATE OR REPLACE FUNCTION tailhook.event_type_matches(patterns text[], event_type text)
RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT EXISTS (
        SELECT 1 FROM unnest(patterns) AS p
        WHERE (p = '*' AND NOT (starts_with(event_type, 'tailhook.') AND event_type <> 'tailhook.test'))
           OR p = event_type
           OR (right(p, 2) = '.*' AND starts_with(event_type, left(p, -1)))
    )
$$;

-- Whether any enabled endpoint other than `subject` would receive an event of
-- this type without a tenant (filters aside: a row they then refuse is harmless).
CREATE OR REPLACE FUNCTION tailhook.operational_wanted(event_type text, subject bigint)
RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (
        SELECT 1 FROM tailhook.endpoints e
         WHERE e.enabled AND e.tenant IS NULL AND e.id IS DISTINCT FROM subject
           AND tailhook.event_type_matches(e.event_types, operational_wanted.event_type))
$$;

-- Publishes one operational event about endpoint `subject` when someone
-- subscribes; `details` is merged into {"endpoint": {...}}. Returns 1 if a
-- row was written, else 0.
CREATE OR REPLACE FUNCTION tailhook.emit_endpoint_event(event_type text, subject bigint, details jsonb)
RETURNS int
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT tailhook.operational_wanted(emit_endpoint_event.event_type, subject) THEN
        RETURN 0;
    END IF;
    INSERT INTO tailhook.outbox (event_type, payload)
    SELECT emit_endpoint_event.event_type,
           jsonb_build_object('endpoint', jsonb_build_object(
               'id', e.id, 'name', e.name, 'tenant', e.tenant,
               -- host[:port] only: no credentials, path or query
               'host', substring(e.url FROM '^[A-Za-z]+://(?:[^@/?#]*@)?([^/?#]*)'))) || details
      FROM tailhook.endpoints e
     WHERE e.id = subject;
    RETURN 1;
END
$$;

-- tailhook.delivery.failed: a row-level trigger whose WHEN clause is all the
-- success path ever evaluates (no function call); the function runs only for
-- a delivery that has just failed for good. A failed delivery of an
-- operational event reports nothing (no reports about reports).
CREATE OR REPLACE FUNCTION tailhook.delivery_failed_event() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    ev record;
BEGIN
    IF NOT tailhook.operational_wanted('tailhook.delivery.failed', NEW.endpoint_id) THEN
        RETURN NULL;
    END IF;
    SELECT o.event_id, o.event_type INTO ev FROM tailhook.outbox o WHERE o.id = NEW.outbox_id;
    IF starts_with(ev.event_type, 'tailhook.') AND ev.event_type <> 'tailhook.test' THEN
        RETURN NULL;
    END IF;
    PERFORM tailhook.emit_endpoint_event('tailhook.delivery.failed', NEW.endpoint_id, jsonb_build_object(
        'delivery_id', NEW.id,
        'event_id', ev.event_id,
        'event_type', ev.event_type,
        'attempts', NEW.attempts,
        'last_status_code', NEW.last_status_code,
        'last_error', NEW.last_error));
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS deliveries_failed_event ON tailhook.deliveries;
CREATE TRIGGER deliveries_failed_event
    AFTER UPDATE OF status ON tailhook.deliveries
    FOR EACH ROW WHEN (NEW.status = 'failed' AND OLD.status <> 'failed')
    EXECUTE FUNCTION tailhook.delivery_failed_event();
