-- After migrations were applied: each role made with a tailhook.grant_*
-- function gets its kind's privileges again, on the objects they added.
SELECT tailhook.regrant()
