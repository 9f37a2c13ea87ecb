"""The OpenAPI 3.1 document for every route, written by hand next to the routes it describes.

A test compares it with the app's route table, so a route added without its description fails
the suite.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from service.core.ledger import TaskStatus
from service.core.pagination import CURSOR_PATTERN
from service.web.openapi_assets import asset_paths, asset_schemas
from service.web.openapi_events import event_paths, event_schemas
from service.web.openapi_limits import with_rate_limits
from service.web.openapi_moderation import moderation_paths, moderation_schemas
from service.web.openapi_schemas import (
    LIST_ERRORS,
    Schema,
    component_schemas,
    error_response,
    json_response,
    page_of,
    ref,
)

_AUTH_ERRORS = {"401": error_response("No API key, or not a valid one")}
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
_TASK_ID = {"name": "task_id", "in": "path", "required": True, "schema": {"type": "string"}}
_ENDPOINT_ID = {
    "name": "endpoint_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
}
_NO_ENDPOINT = {"404": error_response("No such endpoint in this account")}


def _body(name: str) -> Schema:
    return {"required": True, "content": {"application/json": {"schema": ref(name)}}}


def _endpoint_paths() -> Schema:
    body_errors = {
        "400": error_response("Malformed JSON"),
        "413": error_response("Body too large"),
        "415": error_response("Not application/json"),
    }
    return {
        "/v1/endpoints": {
            "post": {
                "summary": "Register a webhook endpoint; its secret is shown this once",
                "requestBody": _body("EndpointCreate"),
                "responses": {
                    "201": json_response(ref("EndpointWithSecret"), "Created"),
                    **body_errors,
                    **_AUTH_ERRORS,
                    "422": error_response("Invalid field, or unsafe_target: the URL is not public"),
                },
            },
            "get": {
                "summary": "List endpoints, newest first",
                "parameters": _LIST_PARAMS,
                "responses": {
                    "200": json_response(page_of("Endpoint")),
                    **_AUTH_ERRORS,
                    **LIST_ERRORS,
                },
            },
        },
        "/v1/endpoints/{endpoint_id}": {
            "get": {
                "summary": "One endpoint",
                "parameters": [_ENDPOINT_ID],
                "responses": {
                    "200": json_response(ref("Endpoint")),
                    **_AUTH_ERRORS,
                    **_NO_ENDPOINT,
                },
            },
            "patch": {
                "summary": "Change url, description, event_types or enabled",
                "parameters": [_ENDPOINT_ID],
                "requestBody": _body("EndpointUpdate"),
                "responses": {
                    "200": json_response(ref("Endpoint")),
                    **body_errors,
                    **_AUTH_ERRORS,
                    **_NO_ENDPOINT,
                    "422": error_response("Invalid field, or unsafe_target: the URL is not public"),
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
                    "200": json_response(ref("EndpointSecret")),
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
                    "202": json_response(ref("PingEvent"), "Queued for delivery"),
                    **_AUTH_ERRORS,
                    **_NO_ENDPOINT,
                },
            },
        },
    }


def build_spec(models: list[str], providers: list[str]) -> Schema:
    """The whole document; models and providers come from config so the enums stay true."""
    document: Schema = {
        "openapi": "3.1.0",
        "info": {
            "title": "taskhook",
            "version": "0.1.0",
            "description": "Webhook-driven event service for AI image generation.",
        },
        "components": {
            "schemas": {
                **component_schemas(models, providers),
                **event_schemas(),
                **moderation_schemas(),
                **asset_schemas(),
            },
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
        "paths": {
            "/healthz": {
                "get": {
                    "summary": "Process is up",
                    "security": [],
                    "responses": {"200": json_response({"type": "object"})},
                }
            },
            "/readyz": {
                "get": {
                    "summary": "Database is writable",
                    "security": [],
                    "responses": {
                        "200": json_response({"type": "object"}),
                        "503": json_response({"type": "object"}, "Not ready"),
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
                    "responses": {"200": json_response({"type": "object"})},
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
                        "202": json_response(
                            ref("Task"), "Accepted (or replayed for the same key)"
                        ),
                        "400": error_response("Malformed JSON or Idempotency-Key"),
                        **_AUTH_ERRORS,
                        "402": error_response("Insufficient credits"),
                        "409": error_response("Idempotency-Key reused with another body"),
                        "413": error_response("Body too large"),
                        "415": error_response("Not application/json"),
                        "422": error_response("Invalid field, or prompt_blocked by moderation"),
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
                    "responses": {
                        "200": json_response(page_of("Task")),
                        **_AUTH_ERRORS,
                        **LIST_ERRORS,
                    },
                },
            },
            "/v1/tasks/{task_id}": {
                "get": {
                    "summary": "One task",
                    "parameters": [_TASK_ID],
                    "responses": {
                        "200": json_response(ref("Task")),
                        **_AUTH_ERRORS,
                        "404": error_response("No such task in this account"),
                    },
                }
            },
            "/v1/tasks/{task_id}/timeline": {
                "get": {
                    "summary": "Every state change, callback and poll of a task, in order",
                    "parameters": [_TASK_ID],
                    "responses": {
                        "200": json_response(page_of("TimelineEntry")),
                        **_AUTH_ERRORS,
                        "404": error_response("No such task in this account"),
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
                    "responses": {
                        "200": json_response(page_of("Callback")),
                        **_AUTH_ERRORS,
                        **LIST_ERRORS,
                    },
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
                        "200": json_response(ref("Callback")),
                        **_AUTH_ERRORS,
                        "404": error_response("No such callback in this account"),
                        "409": error_response("callback_purged: retention removed its body"),
                        "422": error_response("The callback failed verification; not replayable"),
                        "502": error_response("The provider could not be reached"),
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
                        "200": json_response(
                            {
                                "type": "object",
                                "required": ["id", "outcome"],
                                "properties": {
                                    "id": {"type": "string"},
                                    "outcome": {"type": "string"},
                                },
                            }
                        ),
                        "400": error_response("Malformed callback body"),
                        "401": error_response("Forged, altered or expired token; bad signature"),
                        "404": error_response("No such provider"),
                        "413": error_response("Body too large"),
                    },
                }
            },
            "/v1/account": {
                "get": {
                    "summary": "The caller's account and balance",
                    "responses": {"200": json_response(ref("Account")), **_AUTH_ERRORS},
                }
            },
            "/v1/account/ledger": {
                "get": {
                    "summary": "Credit entries, newest first; the balance is their sum",
                    "parameters": _LIST_PARAMS,
                    "responses": {
                        "200": json_response(page_of("CreditEntry")),
                        **_AUTH_ERRORS,
                        **LIST_ERRORS,
                    },
                }
            },
            **_endpoint_paths(),
            **event_paths(_LIST_PARAMS),
            **moderation_paths(_LIST_PARAMS),
            **asset_paths(),
        },
    }
    return {**document, "paths": with_rate_limits(document["paths"])}


async def openapi_json(request: Request) -> Response:
    return JSONResponse(request.app.state.openapi)
