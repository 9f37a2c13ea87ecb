"""The OpenAPI 3.1 document for every route, written by hand next to the routes it describes.

A test compares it with the app's route table, so a route added without its description fails
the suite.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from service.core.ledger import TaskStatus
from service.core.pagination import CURSOR_PATTERN
from service.web.openapi_events import event_paths, event_schemas
from service.web.openapi_schemas import Schema, component_schemas, ref


def _error(description: str) -> Schema:
    return {"description": description, "content": {"application/json": {"schema": ref("Error")}}}


def _json(schema: Schema, description: str = "OK") -> Schema:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _page(item: str) -> Schema:
    return {
        "type": "object",
        "required": ["data", "next_cursor"],
        "properties": {
            "data": {"type": "array", "items": ref(item)},
            "next_cursor": {"type": ["string", "null"]},
        },
    }


_AUTH_ERRORS = {"401": _error("No API key, or not a valid one")}
_LIST_PARAMS = [
    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100}},
    {
        "name": "cursor",
        "in": "query",
        # empty is the first page, as when the parameter is left out
        "schema": {"type": "string", "pattern": f"^$|{CURSOR_PATTERN}"},
        "description": "The next_cursor of the page before.",
    },
]
_LIST_ERRORS = {"400": _error("Malformed limit or cursor"), "422": _error("Limit out of range")}
_TASK_ID = {"name": "task_id", "in": "path", "required": True, "schema": {"type": "string"}}
_ENDPOINT_ID = {
    "name": "endpoint_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
}
_NO_ENDPOINT = {"404": _error("No such endpoint in this account")}


def _body(name: str) -> Schema:
    return {"required": True, "content": {"application/json": {"schema": ref(name)}}}


def _endpoint_paths() -> Schema:
    body_errors = {
        "400": _error("Malformed JSON"),
        "413": _error("Body too large"),
        "415": _error("Not application/json"),
    }
    return {
        "/v1/endpoints": {
            "post": {
                "summary": "Register a webhook endpoint; its secret is shown this once",
                "requestBody": _body("EndpointCreate"),
                "responses": {
                    "201": _json(ref("EndpointWithSecret"), "Created"),
                    **body_errors,
                    **_AUTH_ERRORS,
                    "422": _error("Invalid field, or unsafe_target: the URL is not public"),
                },
            },
            "get": {
                "summary": "List endpoints, newest first",
                "parameters": _LIST_PARAMS,
                "responses": {"200": _json(_page("Endpoint")), **_AUTH_ERRORS, **_LIST_ERRORS},
            },
        },
        "/v1/endpoints/{endpoint_id}": {
            "get": {
                "summary": "One endpoint",
                "parameters": [_ENDPOINT_ID],
                "responses": {"200": _json(ref("Endpoint")), **_AUTH_ERRORS, **_NO_ENDPOINT},
            },
            "patch": {
                "summary": "Change url, description, event_types or enabled",
                "parameters": [_ENDPOINT_ID],
                "requestBody": _body("EndpointUpdate"),
                "responses": {
                    "200": _json(ref("Endpoint")),
                    **body_errors,
                    **_AUTH_ERRORS,
                    **_NO_ENDPOINT,
                    "422": _error("Invalid field, or unsafe_target: the URL is not public"),
                },
            },
            "delete": {
                "summary": "Delete an endpoint; what was still due to it is given up",
                "parameters": [_ENDPOINT_ID],
                "responses": {"204": {"description": "Deleted"}, **_AUTH_ERRORS, **_NO_ENDPOINT},
            },
        },
        "/v1/endpoints/{endpoint_id}/rotate-secret": {
            "post": {
                "summary": "New signing secret; the old one keeps signing for the overlap (24 h)",
                "parameters": [_ENDPOINT_ID],
                "responses": {
                    "200": _json(ref("EndpointSecret")),
                    **_AUTH_ERRORS,
                    **_NO_ENDPOINT,
                },
            },
        },
        "/v1/endpoints/{endpoint_id}/test": {
            "post": {
                "summary": "Send a ping event to this endpoint only",
                "parameters": [_ENDPOINT_ID],
                "responses": {
                    "202": _json(ref("PingEvent"), "Queued for delivery"),
                    **_AUTH_ERRORS,
                    **_NO_ENDPOINT,
                },
            },
        },
    }


def build_spec(models: list[str], providers: list[str]) -> Schema:
    """The whole document; models and providers come from config so the enums stay true."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "taskhook",
            "version": "0.1.0",
            "description": "Webhook-driven event service for AI image generation.",
        },
        "components": {
            "schemas": {**component_schemas(models, providers), **event_schemas()},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
        "paths": {
            "/healthz": {
                "get": {
                    "summary": "Process is up",
                    "security": [],
                    "responses": {"200": _json({"type": "object"})},
                }
            },
            "/readyz": {
                "get": {
                    "summary": "Database is writable",
                    "security": [],
                    "responses": {
                        "200": _json({"type": "object"}),
                        "503": _json({"type": "object"}, "Not ready"),
                    },
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics: tasks, callbacks, deliveries, queue depth",
                    "security": [],
                    "responses": {
                        "200": {
                            "description": "Prometheus text exposition format",
                            "content": {
                                "text/plain; version=0.0.4; charset=utf-8": {
                                    "schema": {"type": "string"}
                                }
                            },
                        }
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "summary": "This document",
                    "security": [],
                    "responses": {"200": _json({"type": "object"})},
                }
            },
            "/v1/tasks": {
                "post": {
                    "summary": "Submit an image task",
                    "parameters": [
                        {
                            "name": "Idempotency-Key",
                            "in": "header",
                            # printable ASCII, no surrounding spaces (HTTP would strip them)
                            "schema": {
                                "type": "string",
                                "maxLength": 255,
                                "pattern": "^[!-~]([ -~]{0,253}[!-~])?$",
                            },
                        }
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": ref("TaskCreate")}},
                    },
                    "responses": {
                        "202": _json(ref("Task"), "Accepted (or replayed for the same key)"),
                        "400": _error("Malformed JSON or Idempotency-Key"),
                        **_AUTH_ERRORS,
                        "402": _error("Insufficient credits"),
                        "409": _error("Idempotency-Key reused with another body"),
                        "413": _error("Body too large"),
                        "415": _error("Not application/json"),
                        "422": _error("Invalid field, or prompt_blocked by moderation"),
                    },
                },
                "get": {
                    "summary": "List tasks, newest first",
                    "parameters": [
                        *_LIST_PARAMS,
                        {
                            "name": "status",
                            "in": "query",
                            "schema": {"type": "string", "enum": [str(s) for s in TaskStatus]},
                        },
                        {
                            "name": "model",
                            "in": "query",
                            "schema": {"type": "string", "enum": models},
                        },
                        {
                            "name": "created_after",
                            "in": "query",
                            "schema": {"type": "string", "format": "date-time"},
                        },
                    ],
                    "responses": {"200": _json(_page("Task")), **_AUTH_ERRORS, **_LIST_ERRORS},
                },
            },
            "/v1/tasks/{task_id}": {
                "get": {
                    "summary": "One task",
                    "parameters": [_TASK_ID],
                    "responses": {
                        "200": _json(ref("Task")),
                        **_AUTH_ERRORS,
                        "404": _error("No such task in this account"),
                    },
                }
            },
            "/v1/tasks/{task_id}/timeline": {
                "get": {
                    "summary": "Every state change, callback and poll of a task, in order",
                    "parameters": [_TASK_ID],
                    "responses": {
                        "200": _json(_page("TimelineEntry")),
                        **_AUTH_ERRORS,
                        "404": _error("No such task in this account"),
                    },
                }
            },
            "/v1/callbacks": {
                "get": {
                    "summary": "The inbound callback log, newest first",
                    "parameters": [
                        *_LIST_PARAMS,
                        {"name": "task_id", "in": "query", "schema": {"type": "string"}},
                    ],
                    "responses": {"200": _json(_page("Callback")), **_AUTH_ERRORS, **_LIST_ERRORS},
                }
            },
            "/v1/callbacks/{callback_id}/replay": {
                "post": {
                    "summary": "Apply a kept callback again (no second effect if it already was)",
                    "parameters": [
                        {
                            "name": "callback_id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        }
                    ],
                    "responses": {
                        "200": _json(ref("Callback")),
                        **_AUTH_ERRORS,
                        "404": _error("No such callback in this account"),
                        "409": _error("callback_purged: retention removed its body"),
                        "422": _error("The callback failed verification; not replayable"),
                        "502": _error("The provider could not be reached"),
                    },
                }
            },
            "/callbacks/{provider}/{token}": {
                "post": {
                    "summary": "A provider's completion or progress callback",
                    "security": [],
                    "parameters": [
                        {
                            "name": "provider",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        },
                        {
                            "name": "token",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        },
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    },
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "required": ["id", "outcome"],
                                "properties": {
                                    "id": {"type": "string"},
                                    "outcome": {"type": "string"},
                                },
                            }
                        ),
                        "400": _error("Malformed callback body"),
                        "401": _error("Forged, altered or expired token; bad signature"),
                        "404": _error("No such provider"),
                        "413": _error("Body too large"),
                    },
                }
            },
            "/v1/account": {
                "get": {
                    "summary": "The caller's account and balance",
                    "responses": {"200": _json(ref("Account")), **_AUTH_ERRORS},
                }
            },
            "/v1/account/ledger": {
                "get": {
                    "summary": "Credit entries, newest first; the balance is their sum",
                    "parameters": _LIST_PARAMS,
                    "responses": {
                        "200": _json(_page("CreditEntry")),
                        **_AUTH_ERRORS,
                        **_LIST_ERRORS,
                    },
                }
            },
            **_endpoint_paths(),
            **event_paths(_LIST_PARAMS),
        },
    }


async def openapi_json(request: Request) -> Response:
    return JSONResponse(request.app.state.openapi)
