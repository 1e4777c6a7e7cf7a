-- The API's enable: tailhook.enable_endpoint, for the token's endpoints only.
-- $1 name, $2 the token's tenant (NULL: any)
SELECT tailhook.enable_endpoint(e.name)
  FROM tailhook.endpoints e
 WHERE e.name = $1::text AND ($2::text IS NULL OR e.tenant = $2::text)
