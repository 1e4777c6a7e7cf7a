-- Changes whenever any endpoint is added, changed or deleted.
SELECT coalesce(md5(string_agg(id::text || ':' || updated_at::text, ',' ORDER BY id)), '')
  FROM tailhook.endpoints
