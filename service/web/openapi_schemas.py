"""Component schemas of the OpenAPI document: the shapes of taskhook's JSON objects."""

from __future__ import annotations

from typing import Any

from service.core.endpoints import MAX_DESCRIPTION, MAX_URL
from service.core.events import EVENT_TYPES
from service.core.ledger import TaskStatus
from service.core.tasks import (
    ASPECT_RATIOS,
    IMAGE_URL_PATTERN,
    MAX_IMAGE_URL,
    MAX_IMAGES,
    MAX_PROMPT,
    MAX_SEED,
    OUTPUT_FORMATS,
    RESOLUTIONS,
    TASK_TYPES,
    UPLOAD_ID_PATTERN,
)

Schema = dict[str, Any]
TIME = {"type": "string", "format": "date-time"}
NULLABLE_TIME = {"type": ["string", "null"], "format": "date-time"}


def result_schema() -> Schema:
    """One result of a task: taskhook's own link to the kept image, and what the file is."""
    return {
        "type": "object",
        "required": ["url", "content_type", "width", "height"],
        "properties": {
            "url": {"type": "string", "description": "taskhook's signed link (fresh per answer)"},
            "source_url": {"type": ["string", "null"], "description": "The provider's link"},
            "content_type": {"type": "string"},
            "width": {"type": "integer"},
            "height": {"type": "integer"},
            "bytes": {"type": ["integer", "null"]},
            "sha256": {"type": ["string", "null"]},
        },
    }


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def error_response(description: str) -> Schema:
    """A documented error response: the contract's error shape."""
    return {"description": description, "content": {"application/json": {"schema": ref("Error")}}}


def json_response(schema: Schema, description: str = "OK") -> Schema:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def page_of(item: str) -> Schema:
    """A list page: ``{"data": [item…], "next_cursor": str | null}``."""
    return {
        "type": "object",
        "required": ["data", "next_cursor"],
        "properties": {
            "data": {"type": "array", "items": ref(item)},
            "next_cursor": {"type": ["string", "null"]},
        },
    }


LIST_ERRORS = {
    "400": error_response("Malformed limit or cursor"),
    "422": error_response("Limit out of range"),
}


_URL = {
    "type": "string",
    "minLength": 1,
    "maxLength": MAX_URL,
    "description": (
        "An http(s) URL. Refused (422 unsafe_target) when it names or resolves to a loopback,"
        " private, link-local, CGNAT, multicast, reserved or metadata address, unless the"
        " service's [delivery] allowed_networks include it."
    ),
}
_EVENT_TYPES = {
    "type": ["array", "null"],
    "minItems": 1,
    "uniqueItems": True,
    "items": {"type": "string", "enum": list(EVENT_TYPES)},
    "description": "null (or omitted) subscribes to every type.",
}
_SECRET = {
    "type": "string",
    # whsec_ + padded base64 of 24 to 64 bytes: 8 to 20 full groups and an optional partial one,
    # or 21 groups and at most one more byte.
    "pattern": (
        "^whsec_(?:(?:[A-Za-z0-9+/]{4}){8,20}(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?"
        "|(?:[A-Za-z0-9+/]{4}){21}(?:[A-Za-z0-9+/]{2}==)?)$"
    ),
    "description": "whsec_ + base64 of 24 to 64 random bytes.",
}
_ENDPOINT_PROPERTIES = {
    "id": {"type": "string", "pattern": "^ep_"},
    "url": {"type": "string"},
    "description": {"type": "string"},
    "event_types": {"type": ["array", "null"], "items": {"type": "string"}},
    "enabled": {"type": "boolean"},
    "disabled_reason": {"type": ["string", "null"]},
    "created_at": TIME,
    "updated_at": TIME,
}


def endpoint_schemas() -> dict[str, Schema]:
    """Subscriber endpoints: the secret appears only on create and rotate."""
    return {
        "EndpointCreate": {
            "type": "object",
            "additionalProperties": False,
            "required": ["url"],
            "properties": {
                "url": _URL,
                "description": {"type": ["string", "null"], "maxLength": MAX_DESCRIPTION},
                "event_types": _EVENT_TYPES,
                "secret": _SECRET,
            },
        },
        "EndpointUpdate": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "url": _URL,
                "description": {"type": ["string", "null"], "maxLength": MAX_DESCRIPTION},
                "event_types": _EVENT_TYPES,
                "enabled": {
                    "type": "boolean",
                    "description": "true clears disabled_reason and the failure streak.",
                },
            },
        },
        "Endpoint": {
            "type": "object",
            "additionalProperties": False,
            "required": list(_ENDPOINT_PROPERTIES),
            "properties": _ENDPOINT_PROPERTIES,
        },
        "EndpointWithSecret": {
            "type": "object",
            "additionalProperties": False,
            "required": [*_ENDPOINT_PROPERTIES, "secret"],
            "properties": {**_ENDPOINT_PROPERTIES, "secret": _SECRET},
        },
        "EndpointSecret": {
            "type": "object",
            "additionalProperties": False,
            "required": ["secret"],
            "properties": {"secret": _SECRET},
        },
        "PingEvent": {
            "type": "object",
            "required": ["id", "type"],
            "properties": {
                "id": {"type": "string", "pattern": "^evt_"},
                "type": {"type": "string", "const": "ping"},
            },
        },
    }


def _optional_nullable(properties: dict[str, Schema], required: tuple[str, ...]) -> Schema:
    """An optional field sent as ``null`` means "not sent" (its default), so the schema says
    so: a client that writes ``"seed": null`` is not refused."""
    out: dict[str, Schema] = {}
    for name, schema in properties.items():
        if name not in required:
            schema = {**schema, "type": [schema["type"], "null"]}
            if "enum" in schema:
                schema["enum"] = [*schema["enum"], None]
        out[name] = schema
    return out


def component_schemas(models: list[str], providers: list[str]) -> dict[str, Schema]:
    return {
        **endpoint_schemas(),
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
            "allOf": [
                {  # an edit needs images…
                    "if": {"required": ["type"], "properties": {"type": {"const": "edit"}}},
                    "then": {"required": ["images"], "properties": {"images": {"type": "array"}}},
                },
                {  # …and text-to-image takes none
                    "if": {
                        "required": ["type"],
                        "properties": {"type": {"const": "text-to-image"}},
                    },
                    "then": {"properties": {"images": {"type": "null"}}},
                },
            ],
            "properties": _optional_nullable(
                {
                    "prompt": {
                        "type": "string",
                        "minLength": 1,
                        "maxLength": MAX_PROMPT,
                        "pattern": "\\S",
                        "description": "Not blank. Screened by moderation (422 prompt_blocked).",
                    },
                    "model": {"type": "string", "enum": models},
                    "type": {"type": "string", "enum": list(TASK_TYPES)},
                    "images": {
                        "type": "array",
                        "minItems": 1,
                        "maxItems": MAX_IMAGES,
                        "items": {
                            "anyOf": [
                                {
                                    "type": "string",
                                    "maxLength": MAX_IMAGE_URL,
                                    "pattern": IMAGE_URL_PATTERN,
                                },
                                {"type": "string", "pattern": UPLOAD_ID_PATTERN},
                            ],
                            "description": "An image URL, or an upload's id (upl_…)",
                        },
                    },
                    "aspect_ratio": {"type": "string", "enum": list(ASPECT_RATIOS)},
                    "resolution": {"type": "string", "enum": list(RESOLUTIONS)},
                    "output_format": {"type": "string", "enum": list(OUTPUT_FORMATS)},
                    "num_images": {"type": "integer", "minimum": 1, "maximum": 4},
                    "seed": {"type": "integer", "minimum": 0, "maximum": MAX_SEED},
                    "provider": {"type": "string", "enum": providers},
                    "metadata": {"type": "object", "description": "At most 4 KiB as JSON; echoed."},
                },
                required=("prompt", "model"),
            ),
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
                "results": {"type": "array", "items": result_schema()},
                "failure": {
                    "type": ["object", "null"],
                    "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
                },
                "cost_credits": {"type": "integer"},
                "refunded_credits": {"type": "integer"},
                "metadata": {"type": "object"},
                "created_at": TIME,
                "updated_at": TIME,
                "completed_at": NULLABLE_TIME,
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
                "created_at": TIME,
            },
        },
        "Callback": {
            "type": "object",
            "required": [
                "id",
                "task_id",
                "provider",
                "provider_task_id",
                "verdict",
                "outcome",
                "detail",
                "headers",
                "body",
                "received_at",
                "applied_at",
            ],
            "properties": {
                "id": {"type": "string", "pattern": "^cb_"},
                "task_id": {"type": "string"},
                "provider": {"type": "string"},
                "provider_task_id": {"type": ["string", "null"]},
                "verdict": {"type": "string", "enum": ["verified", "rejected"]},
                "outcome": {
                    "type": "string",
                    "enum": ["applied", "duplicate", "stale", "rejected", "pending"],
                },
                "detail": {"type": "string"},
                "headers": {"type": "object", "additionalProperties": {"type": "string"}},
                "body": {"description": "The raw body: JSON when it parses, else text."},
                "received_at": TIME,
                "applied_at": NULLABLE_TIME,
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
                "created_at": TIME,
            },
        },
    }
