"""The tenant API's OpenAPI 3.1 document, as data: served at ``/api/v1/openapi.json`` and the
contract the tests hold every response they receive to."""

from __future__ import annotations

from typing import Any

VERSION = "1.0.0"


def _error(description: str, *, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    if headers:
        response["headers"] = headers
    return response


_NO_STORE = {"Cache-Control": {"$ref": "#/components/headers/NoStore"}}
_KEYED_ERRORS = {
    "401": {"$ref": "#/components/responses/Unauthorized"},
    "409": {"$ref": "#/components/responses/NotReady"},
    "429": {"$ref": "#/components/responses/RateLimited"},
    "default": {"$ref": "#/components/responses/Error"},
}
_NULLABLE_STRING = {"type": ["string", "null"]}
# The tenant API's calls to Polar: what they may answer besides _KEYED_ERRORS.
_POLAR_ERRORS = {
    "400": {"$ref": "#/components/responses/BadRequest"},
    "409": {"$ref": "#/components/responses/Conflict"},
    "502": {"$ref": "#/components/responses/PolarUnavailable"},
    "503": {"$ref": "#/components/responses/PolarBusy"},
}


def _created(description: str, schema: str) -> dict[str, Any]:
    return {
        "description": description,
        "headers": _NO_STORE,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
    }


def _body(schema: str) -> dict[str, Any]:
    return {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
    }


DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "Connect Polar tenant API",
        "version": VERSION,
        "summary": "What a workspace's own deployment reads of its Polar billing.",
        "description": (
            "Authenticate with an API key of the workspace, created by an owner on the workspace's "
            "billing page and sent as `Authorization: Bearer <key>`. A test-mode key (`cp_test_…`) "
            "reads the workspace's test-mode connection (Polar's sandbox), a live-mode key "
            "(`cp_live_…`) its live-mode connection (Polar's production). Each key may make 600 "
            "calls a minute (bursts included); beyond, 429 with `Retry-After`. Every error is "
            '`{"error": {"code", "message"}}`.'
        ),
    },
    "servers": [{"url": "/api/v1"}],
    "security": [{"apiKey": []}],
    "paths": {
        "/plans": {
            "get": {
                "operationId": "listPlans",
                "summary": "The plans as provisioned in the key's Polar organization",
                "description": (
                    "The catalog revision the connection was last provisioned with: each plan's "
                    "prices (amounts in cents), benefits and the id of its product at Polar (null "
                    "while not provisioned)."
                ),
                "responses": {
                    "200": {
                        "description": "The plans",
                        "headers": _NO_STORE,
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/PlanList"}}
                        },
                    },
                    **_KEYED_ERRORS,
                },
            }
        },
        "/env": {
            "get": {
                "operationId": "getDeployEnv",
                "summary": "The environment variables a tenant's deploy needs",
                "description": (
                    "`POLAR_SERVER` (`sandbox` or `production`), `POLAR_ORGANIZATION_ID` and one "
                    "`POLAR_PRODUCT_<PLAN>` per plan (the plan id upper-cased, every character other "
                    "than a letter or digit as `_`; empty while the plan has no product). As JSON, "
                    "or as a `.env` block alone with `?format=dotenv` or `Accept: text/plain`."
                ),
                "parameters": [
                    {
                        "name": "format",
                        "in": "query",
                        "required": False,
                        "description": "`dotenv` answers the block as text/plain; `json` (the default) as JSON.",
                        "schema": {"type": "string", "enum": ["json", "dotenv"]},
                    }
                ],
                "responses": {
                    "200": {
                        "description": "The variables",
                        "headers": _NO_STORE,
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/DeployEnv"}},
                            "text/plain": {
                                "schema": {"type": "string"},
                                "example": "POLAR_SERVER=sandbox\nPOLAR_ORGANIZATION_ID=…\nPOLAR_PRODUCT_FREE=…\n",
                            },
                        },
                    },
                    "400": {"$ref": "#/components/responses/BadRequest"},
                    **_KEYED_ERRORS,
                },
            }
        },
        "/checkouts": {
            "post": {
                "operationId": "createCheckout",
                "summary": "A Polar checkout for a plan, for one of the tenant's customers",
                "description": (
                    "Creates a checkout at Polar for the plan's product in the key's organization, for "
                    "the customer the tenant knows as `external_customer_id` (Polar links the "
                    "customer it creates to that id). Send the customer to `url`; after paying, Polar "
                    "sends them to `success_url`. Needs the `checkouts:write` scope."
                ),
                "requestBody": _body("CheckoutCreate"),
                "responses": {
                    "201": _created("The checkout", "Checkout"),
                    "422": {"$ref": "#/components/responses/InvalidRequest"},
                    **_KEYED_ERRORS,
                    **_POLAR_ERRORS,
                },
            }
        },
        "/customer-portal": {
            "post": {
                "operationId": "createCustomerPortalSession",
                "summary": "A Polar customer portal link for one of the tenant's customers",
                "description": (
                    "A customer session at Polar: `url` opens the customer's portal (subscriptions, "
                    "orders, payment methods) until `expires_at`. Needs `customer_sessions:write`."
                ),
                "requestBody": _body("CustomerPortalCreate"),
                "responses": {
                    "201": _created("The portal link", "CustomerPortal"),
                    "404": {"$ref": "#/components/responses/UnknownCustomer"},
                    "422": {"$ref": "#/components/responses/InvalidRequest"},
                    **_KEYED_ERRORS,
                    **_POLAR_ERRORS,
                },
            }
        },
        "/customers/{external_id}/state": {
            "get": {
                "operationId": "getCustomerState",
                "summary": "A customer's active subscriptions, granted benefits and meters",
                "description": (
                    "Answered from the platform's own state, built from Polar's webhook events, "
                    "without a call to Polar once the customer's state is known here (`source: "
                    "local`); otherwise read from Polar (`source: polar`, needs `customers:read`). "
                    "Each subscription names the plan of its product (null for a product not of the "
                    "catalog)."
                ),
                "parameters": [
                    {
                        "name": "external_id",
                        "in": "path",
                        "required": True,
                        "description": "The tenant's own id of the customer (`external_customer_id`)",
                        "schema": {"type": "string"},
                    },
                    {
                        "name": "source",
                        "in": "query",
                        "required": False,
                        "description": (
                            "`auto` (default): the platform's own state once it knows the customer, "
                            "else Polar's; `polar`: Polar's now (the platform's state trails Polar by "
                            "the processing of its events: ask Polar right after a checkout)"
                        ),
                        "schema": {"type": "string", "enum": ["auto", "polar"], "default": "auto"},
                    },
                ],
                "responses": {
                    "200": {
                        "description": "The customer's state",
                        "headers": _NO_STORE,
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/CustomerState"}}
                        },
                    },
                    "404": {"$ref": "#/components/responses/UnknownCustomer"},
                    **_KEYED_ERRORS,
                    **_POLAR_ERRORS,
                },
            }
        },
        "/usage": {
            "post": {
                "operationId": "recordUsage",
                "summary": "Record usage events of the tenant's customers; Polar gets them in the background",
                "description": (
                    "Stores 1 to 1,000 events durably and answers 202 once they are committed; a job "
                    "then ingests them into the key's Polar organization (in batches, retrying with "
                    "backoff while Polar fails), where meters count them. Each event has an "
                    "`external_id`, the caller's or one generated here (returned, to look the event "
                    "up): one already stored for the connection is a `duplicate`, not stored or counted "
                    "again, so a request may safely be sent again. Nothing is stored when an event is "
                    "wrong. Accepted while the connection is being set up too. Needs `events:write`."
                ),
                "requestBody": _body("UsageCreate"),
                "responses": {
                    "202": _created("The events, stored", "UsageAccepted"),
                    "400": {"$ref": "#/components/responses/BadRequest"},
                    "409": {"$ref": "#/components/responses/Conflict"},
                    "422": {"$ref": "#/components/responses/InvalidRequest"},
                    **{k: v for k, v in _KEYED_ERRORS.items() if k != "409"},
                },
            }
        },
        "/usage/{external_id}": {
            "get": {
                "operationId": "getUsageEvent",
                "summary": "A usage event, and whether it reached Polar",
                "description": (
                    "`status`: `pending` (stored, not yet taken by Polar: `attempts`, `last_error` and "
                    "`next_attempt_at` say how sending goes), `ingested` (Polar has it, since "
                    "`ingested_at`) or `failed` (Polar refused it, or every attempt failed: "
                    "`last_error` says why; it is not sent again)."
                ),
                "parameters": [
                    {
                        "name": "external_id",
                        "in": "path",
                        "required": True,
                        "description": "The event's `external_id` (the caller's, or the one `POST /usage` returned)",
                        "schema": {"type": "string"},
                    }
                ],
                "responses": {
                    "200": {
                        "description": "The event",
                        "headers": _NO_STORE,
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/UsageEvent"}}
                        },
                    },
                    "404": {"$ref": "#/components/responses/UnknownUsageEvent"},
                    **_KEYED_ERRORS,
                },
            }
        },
        "/openapi.json": {
            "get": {
                "operationId": "getOpenApiDocument",
                "summary": "This document",
                "security": [],
                "responses": {
                    "200": {
                        "description": "The OpenAPI 3.1 document",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    },
                    "default": {"$ref": "#/components/responses/Error"},
                },
            }
        },
    },
    "components": {
        "securitySchemes": {
            "apiKey": {
                "type": "http",
                "scheme": "bearer",
                "description": "An API key of the workspace: `cp_test_…` or `cp_live_…`.",
            }
        },
        "headers": {
            "NoStore": {"description": "Never cached", "schema": {"type": "string", "const": "no-store"}},
        },
        "responses": {
            "Unauthorized": _error(
                "No key, or one that is malformed, unknown, revoked or expired (the same answer for all)",
                headers={
                    "WWW-Authenticate": {"schema": {"type": "string"}, "description": 'Bearer realm="api"'}
                },
            ),
            "NotReady": _error(
                "The connection the key's mode reads is missing or not ready (code `not_ready`); the "
                "message says what to do"
            ),
            "RateLimited": _error(
                "The key made more calls than its rate allows (code `rate_limited`)",
                headers={
                    "Retry-After": {
                        "description": "Seconds until the key may call again",
                        "schema": {"type": "integer", "minimum": 1},
                    }
                },
            ),
            "BadRequest": _error(
                "A parameter is not one the endpoint accepts, or the body is not JSON (code `bad_request`)"
            ),
            "InvalidRequest": _error(
                "The body is not one the endpoint accepts (code `invalid_request`, or `unknown_plan` "
                "for a plan the catalog does not have); the message names the field"
            ),
            "Conflict": _error(
                "The connection cannot serve the call: not ready (`not_ready`), or its grant lacks a "
                "scope the call needs (`permissions_upgrade`: the message lists them; the workspace's "
                "owner reconnects Polar). Polar is not called."
            ),
            "UnknownCustomer": _error(
                "Polar has no customer with that external id (code `unknown_customer`)"
            ),
            "UnknownUsageEvent": _error(
                "The key's connection has no usage event with that external id (code `unknown_usage_event`)"
            ),
            "PolarUnavailable": _error("Polar failed or did not answer (code `polar_unavailable`)"),
            "PolarBusy": _error(
                "Polar's rate limit for the platform is used up for now (code `polar_busy`)",
                headers={
                    "Retry-After": {
                        "description": "Seconds until the call may succeed",
                        "schema": {"type": "integer", "minimum": 1},
                    }
                },
            ),
            "Error": _error(
                "Any other error: `not_found` (404), `method_not_allowed` (405), `internal_error` (500)…"
            ),
        },
        "schemas": {
            "Error": {
                "type": "object",
                "required": ["error"],
                "additionalProperties": False,
                "properties": {
                    "error": {
                        "type": "object",
                        "required": ["code", "message"],
                        "additionalProperties": False,
                        "properties": {
                            "code": {
                                "type": "string",
                                "examples": ["unauthorized", "not_ready", "rate_limited", "not_found"],
                            },
                            "message": {
                                "type": "string",
                                "description": "For people: what happened, what to do",
                            },
                        },
                    }
                },
            },
            "CheckoutCreate": {
                "type": "object",
                "required": ["plan", "external_customer_id", "success_url"],
                "additionalProperties": False,
                "properties": {
                    "plan": {"type": "string", "description": "A plan id of the catalog"},
                    "external_customer_id": {
                        "type": "string",
                        "minLength": 1,
                        "maxLength": 256,
                        "description": "The tenant's own id of the customer",
                    },
                    "customer_email": {"type": ["string", "null"], "format": "email"},
                    "success_url": {
                        "type": "string",
                        "format": "uri",
                        "description": "Where Polar sends the customer after paying (https in live mode deployments)",
                    },
                    "metadata": {
                        "type": ["object", "null"],
                        "maxProperties": 50,
                        "additionalProperties": {"type": ["string", "number", "boolean"]},
                        "description": "Kept on the checkout at Polar",
                    },
                },
            },
            "Checkout": {
                "type": "object",
                "required": ["id", "url", "expires_at"],
                "additionalProperties": False,
                "properties": {
                    "id": {"type": "string", "description": "The checkout's id at Polar"},
                    "url": {"type": "string", "description": "Polar's hosted checkout page"},
                    "expires_at": {"type": "string", "format": "date-time"},
                },
            },
            "CustomerPortalCreate": {
                "type": "object",
                "required": ["external_customer_id"],
                "additionalProperties": False,
                "properties": {"external_customer_id": {"type": "string", "minLength": 1, "maxLength": 256}},
            },
            "CustomerPortal": {
                "type": "object",
                "required": ["url", "expires_at"],
                "additionalProperties": False,
                "properties": {
                    "url": {"type": "string", "description": "The customer's portal at Polar"},
                    "expires_at": {"type": "string", "format": "date-time"},
                },
            },
            "CustomerState": {
                "type": "object",
                "required": ["external_id", "source", "active_subscriptions", "granted_benefits", "meters"],
                "additionalProperties": False,
                "properties": {
                    "external_id": {"type": "string"},
                    "source": {
                        "type": "string",
                        "enum": ["local", "polar"],
                        "description": "local: the platform's state from Polar's events; polar: read from Polar now",
                    },
                    "active_subscriptions": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": [
                                "id",
                                "plan",
                                "status",
                                "current_period_end",
                                "cancel_at_period_end",
                            ],
                            "additionalProperties": False,
                            "properties": {
                                "id": {"type": "string", "description": "The subscription's id at Polar"},
                                "plan": {
                                    **_NULLABLE_STRING,
                                    "description": "The plan of its product (null: not a catalog product)",
                                },
                                "status": {"type": "string", "examples": ["active", "trialing"]},
                                "current_period_end": {"type": ["string", "null"], "format": "date-time"},
                                "cancel_at_period_end": {"type": "boolean"},
                            },
                        },
                    },
                    "granted_benefits": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["id", "benefit_id", "benefit"],
                            "additionalProperties": False,
                            "properties": {
                                "id": {"type": "string", "description": "The grant's id at Polar"},
                                "benefit_id": {"type": "string", "description": "The benefit's id at Polar"},
                                "benefit": {
                                    **_NULLABLE_STRING,
                                    "description": "The catalog's benefit id (null: not a catalog benefit)",
                                },
                            },
                        },
                    },
                    "meters": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["meter", "meter_id", "balance", "consumed_units", "credited_units"],
                            "additionalProperties": False,
                            "properties": {
                                "meter": {
                                    **_NULLABLE_STRING,
                                    "description": (
                                        "The catalog's meter id, as `GET /plans` names meters (null: not "
                                        "a catalog meter, or the connection's next run has not mapped it yet)"
                                    ),
                                },
                                "meter_id": {"type": "string", "description": "The meter's id at Polar"},
                                "balance": {"type": "number"},
                                "consumed_units": {"type": "number"},
                                "credited_units": {"type": "number"},
                            },
                        },
                    },
                },
            },
            "UsageCreate": {
                "type": "object",
                "required": ["events"],
                "additionalProperties": False,
                "properties": {
                    "events": {
                        "type": "array",
                        "minItems": 1,
                        "maxItems": 1000,
                        "items": {"$ref": "#/components/schemas/UsageEventCreate"},
                    }
                },
            },
            "UsageEventCreate": {
                "type": "object",
                "required": ["name", "external_customer_id"],
                "additionalProperties": False,
                "properties": {
                    "name": {
                        "type": "string",
                        "minLength": 1,
                        "maxLength": 128,
                        "description": "What happened; Polar's meters filter on it (e.g. `api_call`)",
                    },
                    "external_customer_id": {
                        "type": "string",
                        "minLength": 1,
                        "maxLength": 256,
                        "description": "The tenant's own id of the customer",
                    },
                    "external_id": {
                        "type": ["string", "null"],
                        "minLength": 1,
                        "maxLength": 256,
                        "description": (
                            "The event's own id, unique per connection (Polar deduplicates on it); "
                            "generated when missing. One per event of a request."
                        ),
                    },
                    "timestamp": {
                        "type": ["string", "null"],
                        "format": "date-time",
                        "description": "When it happened (ISO 8601 with a time zone; not in the future); default: now",
                    },
                    "metadata": {
                        "type": ["object", "null"],
                        "maxProperties": 50,
                        "additionalProperties": {"type": ["string", "number", "boolean"]},
                        "description": "Values Polar's meters can filter and aggregate on",
                    },
                },
            },
            "UsageAccepted": {
                "type": "object",
                "required": ["accepted", "duplicates", "events"],
                "additionalProperties": False,
                "properties": {
                    "accepted": {"type": "integer", "minimum": 0, "description": "Events stored now"},
                    "duplicates": {
                        "type": "integer",
                        "minimum": 0,
                        "description": "Events whose external_id the connection holds already (not stored again)",
                    },
                    "events": {
                        "type": "array",
                        "description": "Each event of the request, in its order",
                        "items": {
                            "type": "object",
                            "required": ["external_id", "status"],
                            "additionalProperties": False,
                            "properties": {
                                "external_id": {"type": "string"},
                                "status": {"type": "string", "enum": ["accepted", "duplicate"]},
                            },
                        },
                    },
                },
            },
            "UsageEvent": {
                "type": "object",
                "required": [
                    "external_id",
                    "name",
                    "external_customer_id",
                    "timestamp",
                    "metadata",
                    "status",
                    "created_at",
                    "ingested_at",
                    "attempts",
                    "next_attempt_at",
                    "last_error",
                ],
                "additionalProperties": False,
                "properties": {
                    "external_id": {"type": "string"},
                    "name": {"type": "string"},
                    "external_customer_id": {"type": "string"},
                    "timestamp": {"type": "string", "format": "date-time"},
                    "metadata": {
                        "type": "object",
                        "additionalProperties": {"type": ["string", "number", "boolean"]},
                    },
                    "status": {
                        "type": "string",
                        "enum": ["pending", "ingested", "failed"],
                        "description": "pending: not yet at Polar; ingested: Polar has it; failed: given up",
                    },
                    "created_at": {
                        "type": "string",
                        "format": "date-time",
                        "description": "When it was stored",
                    },
                    "ingested_at": {"type": ["string", "null"], "format": "date-time"},
                    "attempts": {
                        "type": "integer",
                        "minimum": 0,
                        "description": "Failed attempts to send it to Polar",
                    },
                    "next_attempt_at": {
                        "type": ["string", "null"],
                        "format": "date-time",
                        "description": "When a pending event is sent (again); null otherwise",
                    },
                    "last_error": {**_NULLABLE_STRING, "description": "Why the last attempt failed"},
                },
            },
            "Mode": {
                "type": "string",
                "enum": ["test", "live"],
                "description": "test: Polar's sandbox; live: Polar's production",
            },
            "PlanList": {
                "type": "object",
                "required": ["mode", "environment", "organization_id", "catalog_revision", "plans"],
                "additionalProperties": False,
                "properties": {
                    "mode": {"$ref": "#/components/schemas/Mode"},
                    "environment": {"type": "string", "enum": ["sandbox", "production"]},
                    "organization_id": {**_NULLABLE_STRING, "description": "The Polar organization's id"},
                    "catalog_revision": {"type": "string"},
                    "plans": {"type": "array", "items": {"$ref": "#/components/schemas/Plan"}},
                },
            },
            "Plan": {
                "type": "object",
                "required": [
                    "id",
                    "name",
                    "description",
                    "interval",
                    "interval_count",
                    "polar_product_id",
                    "prices",
                    "benefits",
                ],
                "additionalProperties": False,
                "properties": {
                    "id": {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]{0,63}$"},
                    "name": {"type": "string"},
                    "description": _NULLABLE_STRING,
                    "interval": {
                        "type": ["string", "null"],
                        "enum": ["day", "week", "month", "year", None],
                        "description": "null for a one-time product",
                    },
                    "interval_count": {"type": "integer", "minimum": 1},
                    "polar_product_id": {
                        **_NULLABLE_STRING,
                        "description": "The product's id at Polar; null while not provisioned",
                    },
                    "prices": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "oneOf": [
                                {"$ref": "#/components/schemas/FixedPrice"},
                                {"$ref": "#/components/schemas/MeteredUnitPrice"},
                            ]
                        },
                    },
                    "benefits": {
                        "type": "array",
                        "items": {
                            "oneOf": [
                                {"$ref": "#/components/schemas/FeatureFlagBenefit"},
                                {"$ref": "#/components/schemas/CustomBenefit"},
                                {"$ref": "#/components/schemas/MeterCreditBenefit"},
                            ]
                        },
                    },
                },
            },
            "FixedPrice": {
                "type": "object",
                "required": ["type", "currency", "amount"],
                "additionalProperties": False,
                "properties": {
                    "type": {"const": "fixed"},
                    "currency": {"type": "string", "pattern": "^[a-z]{3}$"},
                    "amount": {"type": "integer", "minimum": 0, "description": "In cents (0: free)"},
                },
            },
            "MeteredUnitPrice": {
                "type": "object",
                "required": ["type", "currency", "unit_amount", "cap_amount", "meter"],
                "additionalProperties": False,
                "properties": {
                    "type": {"const": "metered_unit"},
                    "currency": {"type": "string", "pattern": "^[a-z]{3}$"},
                    "unit_amount": {
                        "type": "string",
                        "pattern": "^[0-9]+(\\.[0-9]+)?$",
                        "description": 'Cents per unit, as a decimal string (e.g. "0.05")',
                    },
                    "cap_amount": {
                        "type": ["integer", "null"],
                        "minimum": 0,
                        "description": "The most a period costs, in cents",
                    },
                    "meter": {"$ref": "#/components/schemas/Meter"},
                },
            },
            "Meter": {
                "type": "object",
                "required": ["id", "name", "event_name", "aggregation", "property"],
                "additionalProperties": False,
                "properties": {
                    "id": {"type": "string"},
                    "name": {"type": "string"},
                    "event_name": {**_NULLABLE_STRING, "description": "The usage events it counts"},
                    "aggregation": {
                        "type": ["string", "null"],
                        "enum": ["count", "sum", "max", "min", "avg", "unique", None],
                    },
                    "property": _NULLABLE_STRING,
                },
            },
            "FeatureFlagBenefit": {
                "type": "object",
                "required": ["id", "type", "description"],
                "additionalProperties": False,
                "properties": {
                    "id": {"type": "string"},
                    "type": {"const": "feature_flag"},
                    "description": {"type": "string"},
                },
            },
            "CustomBenefit": {
                "type": "object",
                "required": ["id", "type", "description", "note"],
                "additionalProperties": False,
                "properties": {
                    "id": {"type": "string"},
                    "type": {"const": "custom"},
                    "description": {"type": "string"},
                    "note": _NULLABLE_STRING,
                },
            },
            "MeterCreditBenefit": {
                "type": "object",
                "required": ["id", "type", "description", "meter", "units", "rollover"],
                "additionalProperties": False,
                "properties": {
                    "id": {"type": "string"},
                    "type": {"const": "meter_credit"},
                    "description": {"type": "string"},
                    "meter": {"type": "string", "description": "The id of the meter credited"},
                    "units": {"type": "integer", "minimum": 1},
                    "rollover": {"type": "boolean"},
                },
            },
            "DeployEnv": {
                "type": "object",
                "required": ["mode", "variables", "dotenv"],
                "additionalProperties": False,
                "properties": {
                    "mode": {"$ref": "#/components/schemas/Mode"},
                    "variables": {
                        "type": "object",
                        "required": ["POLAR_SERVER", "POLAR_ORGANIZATION_ID"],
                        "properties": {
                            "POLAR_SERVER": {"type": "string", "enum": ["sandbox", "production"]},
                            "POLAR_ORGANIZATION_ID": _NULLABLE_STRING,
                        },
                        "propertyNames": {"pattern": "^POLAR_(SERVER|ORGANIZATION_ID|PRODUCT_[A-Z0-9_]+)$"},
                        "additionalProperties": _NULLABLE_STRING,
                    },
                    "dotenv": {
                        "type": "string",
                        "description": "The same variables as a .env block, one NAME=value line each",
                    },
                },
            },
        },
    },
}
