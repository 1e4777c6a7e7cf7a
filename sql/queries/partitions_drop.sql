-- Retention by partition: drops the oldest period ended at least $1 ms ago,
-- keeping the rows today's retention keeps (tailhook.partitions_drop,
-- sql/0031_partitions.sql). Returns partitions dropped and rows kept.
-- $1 succeeded age ms, $2 failed and cancelled age ms
SELECT p.dropped, p.kept FROM tailhook.partitions_drop($1::bigint, $2::bigint) p
