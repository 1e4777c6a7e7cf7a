-- Removes up to $1 rows of tailhook.event_ids whose event went with a dropped
-- period (tailhook.event_ids_expire, sql/0031_partitions.sql): ids in its
-- DEFAULT chunks, none with tailhook's own ids; returns how many.
-- $1 batch size
SELECT tailhook.event_ids_expire($1::int)
