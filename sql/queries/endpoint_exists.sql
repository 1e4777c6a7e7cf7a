SELECT EXISTS (SELECT 1 FROM tailhook.endpoints WHERE name = $1)
