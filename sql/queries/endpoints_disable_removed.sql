-- Config-managed endpoints no longer in the file are disabled, never deleted.
-- $1 names still declared in the file
UPDATE tailhook.endpoints
   SET enabled = false, disabled_reason = 'removed from the config file'
 WHERE managed_by = 'config' AND enabled AND NOT (name = ANY ($1::text[]))
