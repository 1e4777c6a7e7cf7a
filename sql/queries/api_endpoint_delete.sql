-- The API's delete (its deliveries and attempts go with it).
-- $1 name, $2 the token's tenant (NULL: any)
DELETE FROM tailhook.endpoints e
 WHERE e.name = $1::text AND ($2::text IS NULL OR e.tenant = $2::text)
RETURNING e.id
