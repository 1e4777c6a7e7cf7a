-- `tailhook enable`: re-enable an endpoint whatever disabled it.
-- $1 endpoint name; returns whether it exists
SELECT tailhook.enable_endpoint($1::text)
