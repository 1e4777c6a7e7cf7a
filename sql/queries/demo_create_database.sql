-- `tailhook demo`: its own database. {database} is replaced by a name the demo
-- makes itself (tailhook_demo_<pid>_<hex>); CREATE DATABASE takes no parameters.
CREATE DATABASE {database}
