"""The OpenAPI 3.1 document for every route, written by hand next to the routes it describes.

A test compares it with the app's route table, so a route added without its description fails
the suite.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from service.core.ledger import TaskStatus
from service.core.tasks import (
    ASPECT_RATIOS,
    MAX_IMAGES,
    MAX_PROMPT,
    MAX_SEED,
    OUTPUT_FORMATS,
    RESOLUTIONS,
    TASK_TYPES,
)

Schema = dict[str, Any]


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _error(description: str) -> Schema:
    return {"description": description, "content": {"application/json": {"schema": _ref("Error")}}}


def _json(schema: Schema, description: str = "OK") -> Schema:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _page(item: str) -> Schema:
    return {
        "type": "object",
        "required": ["data", "next_cursor"],
        "properties": {
            "data": {"type": "array", "items": _ref(item)},
            "next_cursor": {"type": ["string", "null"]},
        },
    }


_TIME = {"type": "string", "format": "date-time"}
_NULLABLE_TIME = {"type": ["string", "null"], "format": "date-time"}
_AUTH_ERRORS = {"401": _error("No API key, or not a valid one")}
_LIST_PARAMS = [
    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100}},
    {"name": "cursor", "in": "query", "schema": {"type": "string"}},
]
_LIST_ERRORS = {"400": _error("Malformed limit or cursor"), "422": _error("Limit out of range")}
_TASK_ID = {"name": "task_id", "in": "path", "required": True, "schema": {"type": "string"}}


def _schemas(models: list[str], providers: list[str]) -> dict[str, Schema]:
    return {
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["code", "message", "field"],
                    "properties": {
                        "code": {"type": "string"},
                        "message": {"type": "string"},
                        "field": {"type": ["string", "null"]},
                    },
                }
            },
        },
        "TaskCreate": {
            "type": "object",
            "additionalProperties": False,
            "required": ["prompt", "model"],
            "properties": {
                "prompt": {"type": "string", "minLength": 1, "maxLength": MAX_PROMPT},
                "model": {"type": "string", "enum": models},
                "type": {"type": "string", "enum": list(TASK_TYPES)},
                "images": {
                    "type": "array",
                    "maxItems": MAX_IMAGES,
                    "items": {"type": "string", "format": "uri", "maxLength": 2048},
                },
                "aspect_ratio": {"type": "string", "enum": list(ASPECT_RATIOS)},
                "resolution": {"type": "string", "enum": list(RESOLUTIONS)},
                "output_format": {"type": "string", "enum": list(OUTPUT_FORMATS)},
                "num_images": {"type": "integer", "minimum": 1, "maximum": 4},
                "seed": {"type": "integer", "minimum": 0, "maximum": MAX_SEED},
                "provider": {"type": "string", "enum": providers},
                "metadata": {"type": "object", "description": "At most 4 KiB as JSON; echoed."},
            },
        },
        "Task": {
            "type": "object",
            "required": [
                "id",
                "status",
                "progress",
                "sequence",
                "model",
                "provider",
                "provider_task_id",
                "type",
                "prompt",
                "params",
                "results",
                "failure",
                "cost_credits",
                "refunded_credits",
                "metadata",
                "created_at",
                "updated_at",
                "completed_at",
            ],
            "properties": {
                "id": {"type": "string", "pattern": "^task_"},
                "status": {"type": "string", "enum": [str(s) for s in TaskStatus]},
                "progress": {"type": "integer", "minimum": 0, "maximum": 100},
                "sequence": {"type": "integer", "minimum": 1},
                "model": {"type": "string"},
                "provider": {"type": "string"},
                "provider_task_id": {"type": ["string", "null"]},
                "type": {"type": "string", "enum": list(TASK_TYPES)},
                "prompt": {"type": "string"},
                "params": {"type": "object"},
                "results": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["url", "content_type", "width", "height"],
                        "properties": {
                            "url": {"type": "string"},
                            "content_type": {"type": "string"},
                            "width": {"type": "integer"},
                            "height": {"type": "integer"},
                        },
                    },
                },
                "failure": {
                    "type": ["object", "null"],
                    "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
                },
                "cost_credits": {"type": "integer"},
                "refunded_credits": {"type": "integer"},
                "metadata": {"type": "object"},
                "created_at": _TIME,
                "updated_at": _TIME,
                "completed_at": _NULLABLE_TIME,
            },
        },
        "TimelineEntry": {
            "type": "object",
            "required": [
                "id",
                "kind",
                "source",
                "outcome",
                "status",
                "progress",
                "sequence",
                "detail",
                "created_at",
            ],
            "properties": {
                "id": {"type": "string"},
                "kind": {"type": "string", "enum": ["state_change", "callback", "poll"]},
                "source": {"type": "string"},
                "outcome": {
                    "type": "string",
                    "enum": ["applied", "duplicate", "stale", "rejected"],
                },
                "status": {"type": "string"},
                "progress": {"type": "integer"},
                "sequence": {"type": "integer"},
                "detail": {"type": "string"},
                "created_at": _TIME,
            },
        },
        "Account": {
            "type": "object",
            "required": ["id", "name", "balance_credits"],
            "properties": {
                "id": {"type": "string"},
                "name": {"type": "string"},
                "balance_credits": {"type": "integer"},
            },
        },
        "CreditEntry": {
            "type": "object",
            "required": ["id", "kind", "delta", "task_id", "created_at"],
            "properties": {
                "id": {"type": "string"},
                "kind": {"type": "string", "enum": ["grant", "charge", "refund"]},
                "delta": {"type": "integer"},
                "task_id": {"type": ["string", "null"]},
                "created_at": _TIME,
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
            "schemas": _schemas(models, providers),
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
                        "content": {"application/json": {"schema": _ref("TaskCreate")}},
                    },
                    "responses": {
                        "202": _json(_ref("Task"), "Accepted (or replayed for the same key)"),
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
                        "200": _json(_ref("Task")),
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
            "/v1/account": {
                "get": {
                    "summary": "The caller's account and balance",
                    "responses": {"200": _json(_ref("Account")), **_AUTH_ERRORS},
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
