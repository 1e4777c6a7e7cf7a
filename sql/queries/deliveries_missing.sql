-- Which of the given delivery ids do not exist (for `tailhook redeliver --id`), in the order given.
-- $1 delivery ids
SELECT wanted.id
  FROM unnest($1::bigint[]) WITH ORDINALITY AS wanted (id, n)
 WHERE NOT EXISTS (SELECT 1 FROM tailhook.deliveries d WHERE d.id = wanted.id)
 ORDER BY wanted.n
