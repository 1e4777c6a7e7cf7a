-- For the fan-out transaction only: if PostgreSQL crashes before this commit
-- reaches disk, the rows are simply dispatched again. Results are committed
-- synchronously, and their commit flushes this one too.
SET LOCAL synchronous_commit = off
