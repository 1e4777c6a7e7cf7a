//! The API's OpenAPI 3.1 document, written here as data (served at `/api/v1/openapi.json`; `docs/openapi.json` is a copy a test keeps equal).
//!
//! By hand rather than derived: the responses are JSON built by the SQL
//! files (`sql/queries/api_*.sql`), so there are no Rust types to derive a
//! schema from, and a derive crate would add a macro layer to every
//! handler for a document of a few hundred lines.

use serde_json::{json, Value};

fn nullable(kind: &str) -> Value {
    json!({ "type": [kind, "null"] })
}

fn array_of(items: Value) -> Value {
    json!({ "type": "array", "items": items })
}

fn schema(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn body(name: &str) -> Value {
    json!({ "required": true, "content": { "application/json": { "schema": schema(name) } } })
}

fn answer(description: &str, name: &str) -> Value {
    json!({ "description": description, "content": { "application/json": { "schema": schema(name) } } })
}

/// The error answers every guarded route may give, plus `extra` ones.
fn responses(ok: (&str, Value), extra: &[&str]) -> Value {
    let mut r = json!({
        "401": answer("No token, or an unknown, revoked or expired one", "Error"),
        "429": answer("Too many wrong tokens from this address", "Error"),
        "503": answer("The database did not answer", "Error"),
    });
    r[ok.0] = ok.1;
    for code in extra {
        let why = match *code {
            "400" => "The body is not a JSON object",
            "403" => "The token's scope is too low",
            "404" => "Not found (or not the token's tenant's)",
            "409" => "Conflicts with what is there",
            "413" => "The body is over 1 MiB",
            _ => "A value breaks a rule (see `field` and `rule`)",
        };
        r[*code] = answer(why, "Error");
    }
    r
}

fn path_param(name: &str, description: &str) -> Value {
    json!({ "name": name, "in": "path", "required": true, "description": description, "schema": { "type": "string" } })
}

fn query(name: &str, kind: &str, description: &str) -> Value {
    json!({ "name": name, "in": "query", "required": false, "description": description, "schema": { "type": kind } })
}

fn operation(id: &str, summary: &str, scope: &str, params: Vec<Value>, request: Option<Value>, resp: Value) -> Value {
    let mut op = json!({
        "operationId": id,
        "summary": summary,
        "description": format!("Needs a token of scope `{scope}` or above."),
        "parameters": params,
        "responses": resp,
    });
    if let Some(request) = request {
        op["requestBody"] = request;
    }
    op
}

/// Endpoint fields a create or update may give.
fn endpoint_fields() -> Value {
    json!({
        "url": { "type": "string", "description": "http or https URL (with delivery.https_only, https)" },
        "tenant": nullable("string"),
        "event_types": array_of(json!({ "type": "string" })),
        "filter": nullable("object"),
        "filter_path": nullable("string"),
        "headers": { "type": "object", "additionalProperties": { "type": "string" } },
        "enabled": { "type": "boolean" },
        "max_attempts": { "type": ["integer", "null"], "format": "int32" },
        "timeout_ms": { "type": ["integer", "null"], "format": "int32" },
        "rate_limit_per_sec": { "type": ["integer", "null"], "format": "int32" },
        "max_in_flight": { "type": ["integer", "null"], "format": "int32" },
        "ordered": { "type": "boolean" },
        "transform": nullable("string"),
        "standard_signature": { "type": "boolean" },
        "backoff_initial_ms": { "type": ["integer", "null"], "format": "int32" },
        "backoff_max_ms": { "type": ["integer", "null"], "format": "int32" },
        "legacy_signature": legacy_signature(),
        "legacy_secret": {
            "type": ["string", "null"], "writeOnly": true,
            "description": "The key of legacy_signature (16 to 256 bytes), given with it; never returned",
        },
    })
}

/// The one compatibility signature header an endpoint may add (docs/guide/migrating.md).
fn legacy_signature() -> Value {
    let text = |values: &[&str]| json!({ "type": "string", "enum": values });
    json!({
        "type": ["object", "null"],
        "description": "One extra signature header in a format the receivers already check; null: none",
        "additionalProperties": false,
        "required": ["header"],
        "properties": {
            "header": { "type": "string" },
            "algorithm": text(&["sha256", "sha512"]),
            "encoding": text(&["hex", "base64"]),
            "prefix": { "type": "string" },
            "format": text(&["body", "timestamped"]),
            "body": text(&["unchanged", "python_sorted"]),
        },
    })
}

fn schemas() -> Value {
    let mut create = endpoint_fields();
    create["name"] = json!({ "type": "string", "minLength": 1 });
    let ts = || nullable("string");
    let mut all = json!({});
    merge(
        &mut all,
        json!({
            "Error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": { "type": "string", "description": "Stable: not_found, invalid, invalid_json, unauthorized, forbidden, too_many_attempts, too_large, name_taken, managed_by_config, event_id_taken, test_not_sent, unavailable" },
                    "message": { "type": "string" },
                    "field": { "type": "string", "description": "With `invalid`: the field or parameter refused" },
                    "rule": { "type": "string", "description": "With `invalid`: the rule it breaks (a constraint name where the database holds the rule)" },
                },
            },
            "EndpointCreate": { "type": "object", "required": ["name", "url"], "additionalProperties": false, "properties": create },
            "EndpointUpdate": { "type": "object", "additionalProperties": false, "properties": endpoint_fields() },
            "Endpoint": {
                "type": "object",
                "description": "No secret and no header value: the URL as scheme, host and port, header names, the number of secrets.",
                "required": ["name", "url", "tenant", "event_types", "enabled", "secrets", "header_names", "managed_by"],
                "properties": {
                    "name": { "type": "string" }, "url": { "type": "string" }, "tenant": nullable("string"),
                    "event_types": array_of(json!({ "type": "string" })),
                    "filter": { "type": ["object", "array", "string", "number", "boolean", "null"] },
                    "filter_path": nullable("string"),
                    "header_names": array_of(json!({ "type": "string" })),
                    "secrets": { "type": "integer" },
                    "secrets_retire_at": { "type": ["string", "null"], "description": "When the secrets before the newest stop signing" },
                    "enabled": { "type": "boolean" }, "auto_disabled": { "type": "boolean" },
                    "disabled_reason": nullable("string"), "invalid_reason": nullable("string"),
                    "paused_until": ts(), "consecutive_failures": { "type": "integer" },
                    "max_attempts": nullable("integer"), "timeout_ms": nullable("integer"),
                    "rate_limit_per_sec": nullable("integer"), "max_in_flight": nullable("integer"),
                    "backoff_initial_ms": nullable("integer"), "backoff_max_ms": nullable("integer"),
                    "ordered": { "type": "boolean" }, "transform": nullable("string"),
                    "standard_signature": { "type": "boolean" }, "legacy_signature": legacy_signature(),
                    "managed_by": { "type": "string", "enum": ["sql", "config"] },
                    "created_at": { "type": "string" }, "updated_at": { "type": "string" },
                },
            },
        }),
    );
    merge(
        &mut all,
        json!({
            "EndpointList": {
                "type": "object", "required": ["endpoints", "next_after"],
                "properties": { "endpoints": array_of(schema("Endpoint")), "next_after": { "type": ["string", "null"], "description": "Pass as `after` for the next page" } },
            },
            "EndpointCreated": {
                "type": "object", "required": ["endpoint", "secret"],
                "properties": { "endpoint": schema("Endpoint"), "secret": { "type": "string", "description": "Shown once" } },
            },
            "Pause": { "type": "object", "required": ["seconds"], "properties": { "seconds": { "type": "integer", "minimum": 1, "maximum": 2_592_000 } } },
            "Rotate": { "type": "object", "properties": { "overlap_seconds": { "type": "integer", "minimum": 0, "maximum": 2_592_000, "default": 86_400 } } },
            "Rotated": {
                "type": "object", "required": ["secret", "previous_secrets_retire_at"],
                "properties": { "secret": { "type": "string", "description": "Shown once" }, "previous_secrets_retire_at": { "type": "string" } },
            },
            "TestResult": {
                "type": "object", "required": ["endpoint", "event_id", "succeeded"],
                "properties": {
                    "endpoint": { "type": "string" }, "origin": nullable("string"), "event_id": { "type": "string" },
                    "event_type": { "type": "string" }, "status_code": nullable("integer"), "duration_ms": { "type": "integer" },
                    "response": nullable("string"), "error_kind": nullable("string"), "error": nullable("string"),
                    "refused_before_sending": { "type": "boolean" }, "succeeded": { "type": "boolean" },
                },
            },
        }),
    );
    merge(
        &mut all,
        json!({
            "Publish": {
                "type": "object", "required": ["event_type", "payload"], "additionalProperties": false,
                "properties": {
                    "event_id": { "type": ["string", "null"], "format": "uuid", "description": "The idempotency key; absent: a new UUID v7" },
                    "event_type": { "type": "string", "minLength": 1 }, "payload": {},
                    "tenant": nullable("string"), "ordering_key": nullable("string"),
                },
            },
            "Event": {
                "type": "object", "required": ["event_id", "event_type", "payload", "tenant", "deliveries"],
                "properties": {
                    "event_id": { "type": "string" }, "event_type": { "type": "string" }, "payload": {},
                    "tenant": nullable("string"), "ordering_key": nullable("string"),
                    "published_at": { "type": "string" }, "dispatched_at": ts(),
                    "deliveries": array_of(json!({
                        "type": "object", "required": ["id", "endpoint", "status", "attempts"],
                        "properties": {
                            "id": { "type": "integer" }, "endpoint": { "type": "string" }, "status": { "type": "string" },
                            "attempts": { "type": "integer" }, "last_status_code": nullable("integer"),
                            "created_at": { "type": "string" }, "completed_at": ts(), "next_attempt_at": ts(),
                        },
                    })),
                },
            },
            "DeliveryList": {
                "type": "object", "required": ["deliveries", "next_below"],
                "properties": {
                    "deliveries": array_of(json!({
                        "type": "object", "required": ["id", "event_id", "endpoint", "status"],
                        "properties": {
                            "id": { "type": "integer" }, "event_id": { "type": "string" }, "event_type": { "type": "string" },
                            "tenant": nullable("string"), "endpoint": { "type": "string" }, "status": { "type": "string" },
                            "attempts": { "type": "integer" }, "last_status_code": nullable("integer"),
                            "created_at": { "type": "string" }, "next_attempt_at": ts(),
                        },
                    })),
                    "next_below": { "type": ["integer", "null"], "description": "Pass as `below` for the next page" },
                },
            },
        }),
    );
    merge(
        &mut all,
        json!({
            "Delivery": {
                "type": "object", "required": ["id", "event_id", "endpoint", "status", "attempt_log"],
                "properties": {
                    "id": { "type": "integer" }, "event_id": { "type": "string" }, "event_type": { "type": "string" },
                    "tenant": nullable("string"), "endpoint": { "type": "string" }, "status": { "type": "string" },
                    "attempts": { "type": "integer" }, "in_flight": { "type": "boolean" }, "next_attempt_at": ts(),
                    "last_status_code": nullable("integer"), "last_error": nullable("string"),
                    "created_at": { "type": "string" }, "completed_at": ts(),
                    "attempt_log": array_of(json!({
                        "type": "object", "required": ["attempt", "started_at"],
                        "properties": {
                            "attempt": { "type": "integer" }, "started_at": { "type": "string" }, "duration_ms": { "type": "integer" },
                            "status_code": nullable("integer"), "error_kind": nullable("string"), "error": nullable("string"),
                            "response_body": nullable("string"), "requested_by": nullable("string"),
                        },
                    })),
                },
            },
        }),
    );
    merge(
        &mut all,
        json!({
            "RedeliverQuery": {
                "type": "object", "additionalProperties": false,
                "properties": {
                    "endpoint": nullable("string"), "event_type": nullable("string"),
                    "status": { "type": ["string", "null"], "enum": ["pending", "retrying", "succeeded", "failed", "cancelled", null] },
                    "since": nullable("string"), "until": nullable("string"),
                },
            },
            "Redelivered": { "type": "object", "required": ["redelivered"], "properties": { "redelivered": { "type": "integer" } } },
            "Status": {
                "type": "object", "required": ["window", "endpoints"],
                "properties": {
                    "window": { "type": "string" },
                    "endpoints": array_of(json!({
                        "type": "object", "required": ["name", "state"],
                        "properties": {
                            "name": { "type": "string" }, "state": { "type": "string" }, "paused_until": ts(),
                            "disabled_reason": nullable("string"), "invalid_reason": nullable("string"),
                            "pending": { "type": "integer" }, "retrying": { "type": "integer" }, "failed": { "type": "integer" },
                            "failed_in_window": { "type": "integer" }, "succeeded_in_window": { "type": "integer" },
                            "success_rate_in_window": nullable("number"), "oldest_undelivered_age_secs": nullable("integer"),
                        },
                    })),
                },
            },
        }),
    );
    all
}

fn merge(all: &mut Value, part: Value) {
    if let (Value::Object(all), Value::Object(part)) = (all, part) {
        all.extend(part);
    }
}

/// The whole document, with links from a created endpoint to the routes that take its name.
pub fn document() -> Value {
    let mut doc = paths();
    let mut links = serde_json::Map::new();
    for id in [
        "getEndpoint",
        "updateEndpoint",
        "deleteEndpoint",
        "enableEndpoint",
        "pauseEndpoint",
        "resumeEndpoint",
        "rotateSecret",
    ] {
        links.insert(
            id.to_owned(),
            json!({ "operationId": id, "parameters": { "name": "$response.body#/endpoint/name" } }),
        );
    }
    doc["paths"]["/endpoints"]["post"]["responses"]["201"]["links"] = Value::Object(links);
    doc
}

fn paths() -> Value {
    let name = || path_param("name", "The endpoint's name");
    let named = |id: &str, summary: &str, scope: &str, request: Option<Value>, ok: (&str, Value), extra: &[&str]| {
        operation(id, summary, scope, vec![name()], request, responses(ok, extra))
    };
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "tailhook API",
            "version": "1",
            "description": "Manage endpoints, publish events, search and redeliver deliveries. Every route but this document needs `Authorization: Bearer <token>` (`tailhook token create`). A token bound to a tenant sees only that tenant's endpoints, events and deliveries; anything else answers 404.",
        },
        "servers": [{ "url": "/api/v1" }],
        "security": [{ "bearer": [] }],
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "schemas": schemas(),
        },
        "paths": {
            "/status": { "get": operation("status", "Per endpoint: backlog, recent outcomes, state", "read",
                vec![query("window", "string", "A PostgreSQL interval (default 24h)")],
                None, responses(("200", answer("The figures", "Status")), &["403", "422"])) },
            "/endpoints": {
                "get": operation("listEndpoints", "Endpoints by name, keyset-paged", "read", vec![
                    query("after", "string", "Names after this one (the previous page's next_after)"),
                    query("limit", "integer", "At most this many (1 to 200, default 50)"),
                    query("tenant", "string", "Only this tenant's"),
                    query("enabled", "boolean", "Only enabled (true) or disabled (false) ones"),
                    query("event_type", "string", "Only endpoints taking this event type"),
                ], None, responses(("200", answer("A page", "EndpointList")), &["403", "422"])),
                "post": operation("createEndpoint", "Create an endpoint with a new secret (returned once)", "write", vec![],
                    Some(body("EndpointCreate")),
                    responses(("201", answer("Created", "EndpointCreated")), &["400", "403", "409", "413", "422"])),
            },
            "/endpoints/{name}": {
                "get": named("getEndpoint", "One endpoint", "read", None, ("200", answer("The endpoint", "Endpoint")), &["403", "404"]),
                "patch": named("updateEndpoint", "Change the fields given", "write", Some(body("EndpointUpdate")),
                    ("200", answer("The endpoint as it is now", "Endpoint")), &["400", "403", "404", "409", "413", "422"]),
                "delete": named("deleteEndpoint", "Delete an endpoint with its deliveries", "admin", None,
                    ("204", json!({ "description": "Deleted" })), &["403", "404", "409"]),
            },
            "/endpoints/{name}/enable": { "post": named("enableEndpoint", "Re-enable, forgetting failures and any pause", "write", None,
                ("200", answer("The endpoint", "Endpoint")), &["403", "404"]) },
            "/endpoints/{name}/pause": { "post": named("pauseEndpoint", "Hold deliveries for some seconds", "write", Some(body("Pause")),
                ("200", answer("The endpoint", "Endpoint")), &["400", "403", "404", "413", "422"]) },
            "/endpoints/{name}/resume": { "post": named("resumeEndpoint", "End a pause now", "write", None,
                ("200", answer("The endpoint", "Endpoint")), &["403", "404"]) },
            "/endpoints/{name}/rotate-secret": { "post": named("rotateSecret",
                "A new secret signs from now on; the older ones too until the overlap ends", "write", Some(json!({
                    "required": false, "content": { "application/json": { "schema": schema("Rotate") } } })),
                ("200", answer("The new secret (shown once)", "Rotated")), &["400", "403", "404", "409", "413", "422"]) },
            "/endpoints/{name}/test": { "post": named("testEndpoint", "Send one signed test request now (recorded nowhere)", "write", None,
                ("200", answer("What the endpoint answered", "TestResult")), &["403", "404", "409"]) },
            "/events": { "post": operation("publish", "Publish an event; its id is the idempotency key", "write", vec![],
                Some(body("Publish")), {
                    let mut r = responses(("201", answer("Published", "Event")), &["400", "403", "409", "413", "422"]);
                    r["200"] = answer("Published before with the same id and content: nothing new", "Event");
                    r
                }) },
            "/events/{event_id}": { "get": operation("getEvent", "An event with its deliveries", "read",
                vec![path_param("event_id", "The event's id (a UUID)")], None,
                responses(("200", answer("The event", "Event")), &["403", "404"])) },
            "/deliveries": { "get": operation("searchDeliveries", "Search deliveries, newest first (as the console)", "read", vec![
                query("event_id", "string", "One event's deliveries"),
                query("endpoint", "string", "To this endpoint"),
                query("event_type", "string", "Of this event type"),
                query("tenant", "string", "Of this tenant's events"),
                query("status", "string", "pending, retrying, succeeded, failed or cancelled"),
                query("since", "string", "Created at or after (a timestamp)"),
                query("until", "string", "Created before"),
                query("below", "integer", "Ids below this (the previous page's next_below)"),
                query("limit", "integer", "At most this many (1 to 200, default 50)"),
            ], None, responses(("200", answer("A page", "DeliveryList")), &["403", "422"])) },
            "/deliveries/redeliver": { "post": operation("redeliverQuery", "Redeliver the deliveries matching (default: failed ones)", "admin",
                vec![], Some(body("RedeliverQuery")),
                responses(("200", answer("How many", "Redelivered")), &["400", "403", "404", "413", "422"])) },
            "/deliveries/{id}": { "get": operation("getDelivery", "A delivery with its attempts", "read",
                vec![path_param("id", "The delivery's id")], None,
                responses(("200", answer("The delivery", "Delivery")), &["403", "404"])) },
            "/deliveries/{id}/redeliver": { "post": operation("redeliverOne", "Send a delivery again now, keeping its history", "write",
                vec![path_param("id", "The delivery's id")], None,
                responses(("200", answer("How many (1)", "Redelivered")), &["403", "404"])) },
        },
    })
}
