-- Drops the secrets whose rotation overlap has ended (see 0027).
SELECT tailhook.retire_secrets()
