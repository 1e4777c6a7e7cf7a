-- Creates the three tables' partitions up to $2 periods of $1 ms ahead, and
-- moves rows of those periods out of the DEFAULT partitions
-- (tailhook.partitions_prepare, sql/0031_partitions.sql).
-- Returns partitions created and rows moved.
-- $1 period width ms, $2 periods ahead
SELECT p.created, p.moved
  FROM tailhook.partitions_prepare($1::bigint::float8 * interval '1 millisecond', $2::int) p
