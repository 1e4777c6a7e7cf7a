-- `tailhook status`: the tables captured with tailhook.capture and their options.
SELECT table_name, event_type, operations, columns, tenant_column, key_column
  FROM tailhook.captures
 ORDER BY table_name
