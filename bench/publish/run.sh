#!/usr/bin/env bash
# What migration 21 costs a publisher: `tailhook.publish` as SECURITY
# DEFINER with a pinned search_path and the check on `tailhook.` types,
# against migration 17's definition (PL/pgSQL, the caller's rights, no SET).
# pgbench, one client, prepared statements, one `SELECT ...publish(...)` per
# transaction, synchronous_commit off (so CPU, not the disk, counts). The two
# definitions alternate transaction by transaction (two scripts of equal
# weight, picked at random), so both see the same machine; each run prints
# their mean latencies and the ratio (publishes/s go as its inverse).
#
#   bench/publish/run.sh [RUNS] [SECONDS]    DATABASE_URL: the server's admin URL
set -euo pipefail
runs=${1:-6}
seconds=${2:-10}
admin=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
db=tailhook_bench_publish_$$
url=${admin%/*}/$db
work=$(mktemp -d)
psql -q "$admin" -c "CREATE DATABASE $db"
trap 'psql -q "$admin" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)"; rm -rf "$work"' EXIT
TAILHOOK_DATABASE__URL=$url cargo run -q -- migrate >/dev/null
psql -q "$url" -v ON_ERROR_STOP=1 <<'SQL'
-- Migration 17's definition, under another name.
CREATE FUNCTION tailhook.publish_17(event_type text, payload jsonb, tenant text DEFAULT NULL, ordering_key text DEFAULT NULL)
RETURNS uuid LANGUAGE plpgsql AS $$
DECLARE
    published uuid;
BEGIN
    INSERT INTO tailhook.outbox (event_type, payload, tenant, ordering_key)
    VALUES (publish_17.event_type, publish_17.payload, publish_17.tenant, publish_17.ordering_key)
    RETURNING outbox.event_id INTO published;
    RETURN published;
END
$$;
SQL
echo "SELECT tailhook.publish_17('order.paid', '{\"order\": 42, \"amount\": 1999}');" >"$work/old.sql"
echo "SELECT tailhook.publish('order.paid', '{\"order\": 42, \"amount\": 1999}');" >"$work/new.sql"
echo "run  publishes/s  migration 17 ms  migration 21 ms  latency 21/17"
for i in $(seq 1 "$runs"); do
    PGOPTIONS='-c synchronous_commit=off' pgbench -n -M prepared -c 1 -T "$seconds" -r \
        -f "$work/old.sql@1" -f "$work/new.sql@1" "$url" 2>/dev/null |
        awk -v run="$i" '/SELECT tailhook.publish_17/ {o = $1} /SELECT tailhook.publish\(/ {n = $1} /^tps/ {t = $3}
            END {printf "%3d  %11.0f  %15.3f  %15.3f  %13.3f\n", run, t, o, n, n / o}'
done
