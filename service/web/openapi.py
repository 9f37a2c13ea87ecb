"""The OpenAPI 3.1 document for every route, written by hand next to the routes it describes.

A test compares it with the app's route table, so a route added without its description fails
the suite.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from service.core.ledger import TaskStatus
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
    {"name": "cursor", "in": "query", "schema": {"type": "string"}},
]
_LIST_ERRORS = {"400": _error("Malformed limit or cursor"), "422": _error("Limit out of range")}
_TASK_ID = {"name": "task_id", "in": "path", "required": True, "schema": {"type": "string"}}


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
            "schemas": component_schemas(models, providers),
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
                            "schema": {"type": "string", "maxLength": 255},
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
        },
    }


async def openapi_json(request: Request) -> Response:
    return JSONResponse(request.app.state.openapi)
