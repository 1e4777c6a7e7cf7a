-- tailhook schema, version 5: replicas show that they are alive, so a dead
-- one's leases are taken over at once instead of when they expire.
-- Plain SQL, safe to re-run.

-- One row per running tailhook process, written every 500 ms by the process
-- itself. A replica whose heartbeat is 2 s old is dead; its leases are due.
-- alive_since is when its current unbroken run of heartbeats began: a
-- replica judges others only after its own has lasted 2 s, so after a
-- database restart or an outage that stopped everyone's heartbeats, nobody
-- takes over a live replica's work while it is reconnecting.
CREATE TABLE IF NOT EXISTS tailhook.replicas (
    name         text PRIMARY KEY,
    started_at   timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now(),
    alive_since  timestamptz NOT NULL DEFAULT now()
);
