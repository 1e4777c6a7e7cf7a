-- Whether an endpoint exists for the token (its tenant's, or any) and who
-- manages it (`config`: the file wins, so the API only pauses, resumes,
-- enables and tests it).
-- $1 name, $2 the token's tenant (NULL: any)
SELECT e.id, e.managed_by
  FROM tailhook.endpoints e
 WHERE e.name = $1::text AND ($2::text IS NULL OR e.tenant = $2::text)
