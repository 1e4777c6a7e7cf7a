-- The console's delivery search, newest first, one page. Keyset, never
-- OFFSET: the page holds deliveries with ids below $7, and reads at most
-- the $8 ids below it (a range of the primary key), so a page costs the
-- same with 10,000 or 10,000,000 deliveries retained whatever the filters
-- match; when fewer than $9 match in that range, the next page starts below
-- it. Every filter is optional (NULL). A search by event id uses
-- console_search_event.sql instead (the outbox's unique index).
-- $1 endpoint name, $2 event type, $3 tenant, $4 status, $5 created since, $6 created before,
-- $7 ids below this (console_bounds.sql gives the first page's), $8 ids read at most, $9 rows at most,
-- $10 the endpoints' tenant (a tenant-bound scope's: in the query, so a page's
-- last id and the next page's start are never another's delivery)
SELECT d.id, o.event_id::text, o.event_type, o.tenant, e.name, d.status, d.attempts, d.last_status_code,
       to_char(d.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') AS created_at,
       CASE WHEN d.status IN ('pending', 'retrying')
            THEN to_char(d.next_attempt_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') END AS next_attempt_at
  FROM tailhook.deliveries d
  JOIN tailhook.outbox o ON o.id = d.outbox_id
  JOIN tailhook.endpoints e ON e.id = d.endpoint_id
 WHERE d.id < $7::bigint AND d.id >= $7::bigint - $8::bigint
   AND ($1::text IS NULL OR e.name = $1::text)
   AND ($2::text IS NULL OR o.event_type = $2::text)
   AND ($3::text IS NULL OR o.tenant = $3::text)
   AND ($10::text IS NULL OR e.tenant = $10::text)
   AND ($4::text IS NULL OR d.status = $4::text)
   AND ($5::text IS NULL OR d.created_at >= $5::text::timestamptz)
   AND ($6::text IS NULL OR d.created_at < $6::text::timestamptz)
 ORDER BY d.id DESC
 LIMIT $9::bigint
