-- tailhook schema, version 11: time-ordered event ids (UUID version 7) by default.
-- Plain SQL, safe to re-run and to run while tailhook and publishers work.
--
-- Why: dispatching an event cannot be a HOT update (dispatched_at is in the
-- claim index's predicate), so every dispatched row adds an entry to the
-- event_id unique index. Random (version 4) ids put that entry on a random
-- page of an index that outgrows shared_buffers once millions of events are
-- retained: one cold page read and dirtied per event. Version 7 ids start
-- with the Unix time in milliseconds, so new entries land on the index's
-- few rightmost pages. Publishers may still set any UUID themselves.

-- RFC 9562 version 7: 48 bits of Unix milliseconds, then the random bits of
-- a version 4 UUID, with the version nibble turned from 4 (0100) into 7 (0111).
CREATE OR REPLACE FUNCTION tailhook.uuid_v7() RETURNS uuid
LANGUAGE sql VOLATILE PARALLEL SAFE AS $$
    SELECT encode(
        set_bit(set_bit(
            overlay(uuid_send(gen_random_uuid())
                    PLACING substring(int8send((extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3)
                    FROM 1 FOR 6),
            52, 1), 53, 1),
        'hex')::uuid
$$;

-- A catalog-only change (no table rewrite); it takes the table's lock for an
-- instant, like any ALTER TABLE.
ALTER TABLE tailhook.outbox ALTER COLUMN event_id SET DEFAULT tailhook.uuid_v7();
