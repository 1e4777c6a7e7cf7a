-- The console's delivery page: one delivery with its event and endpoint.
-- The payload is pretty-printed by PostgreSQL only when its text is at most
-- $2 bytes; a larger one is cut to its first $2 characters, so a huge
-- payload never leaves the database whole. The endpoint's secrets and
-- header values are not read: only how many secrets there are and the
-- header names. The URL is redacted by the caller.
-- With the endpoint's transform, the payload's exact text and the envelope's
-- timestamp come too (the text only when it is at most $3 bytes, the
-- largest payload ever sent), so the page can show the body the transform
-- makes of it.
-- Who redelivered it last and when, and whether that redelivery has made no
-- attempt yet (the page then says it is about to be sent, not `retrying`
-- beside the error it gave up with).
-- $1 delivery id, $2 payload bytes shown at most (characters when cut),
-- $3 max payload bytes
SELECT d.id, o.event_id::text, o.event_type, o.tenant, o.ordering_key,
       to_char(o.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.MS') AS published_at,
       e.name, e.url, d.status, d.attempts,
       CASE WHEN d.status IN ('pending', 'retrying')
            THEN to_char(d.next_attempt_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.MS') END AS next_attempt_at,
       coalesce(d.locked_until > now(), false) AS in_flight,
       d.last_status_code, d.last_error,
       to_char(d.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.MS') AS created_at,
       to_char(d.completed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.MS') AS completed_at,
       p.bytes AS payload_bytes,
       CASE WHEN p.bytes <= $2::int THEN jsonb_pretty(o.payload)
            ELSE left(o.payload::text, $2::int) END AS payload,
       pg_catalog.cardinality(e.secrets) AS secrets,
       ARRAY(SELECT jsonb_object_keys(e.headers) ORDER BY 1) AS header_names,
       e.transform,
       CASE WHEN e.transform IS NOT NULL AND p.bytes <= $3::int THEN o.payload::text END AS payload_text,
       to_char(o.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS timestamp,
       d.redelivered_by,
       to_char(d.redelivered_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.MS') AS redelivered_at,
       d.redelivered_at IS NOT NULL AND d.status IN ('pending', 'retrying')
           AND NOT EXISTS (SELECT 1 FROM tailhook.attempts a
                            WHERE a.delivery_id = d.id AND a.started_at >= d.redelivered_at) AS redelivery_waiting
  FROM tailhook.deliveries d
  JOIN tailhook.outbox o ON o.id = d.outbox_id
  JOIN tailhook.endpoints e ON e.id = d.endpoint_id
  CROSS JOIN LATERAL (SELECT octet_length(o.payload::text) AS bytes) p
 WHERE d.id = $1::bigint
