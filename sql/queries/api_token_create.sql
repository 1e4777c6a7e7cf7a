-- `tailhook token create`: the new token, shown once.
-- $1 scope, $2 tenant, $3 name, $4 expires in (an interval, NULL: never)
SELECT tailhook.create_api_token($1::text, $2::text, $3::text, $4::text::interval)
