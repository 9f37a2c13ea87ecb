"""The OpenAPI description of the event log, delivery history and replay routes (paths and
component schemas), merged into the document by ``openapi.build_spec``. Kept apart from the
rest of the document so neither module outgrows a read."""

from __future__ import annotations

from service.core.events import EVENT_TYPES
from service.store.base import DELIVERY_STATUSES
from service.web.openapi_schemas import (
    LIST_ERRORS,
    NULLABLE_TIME,
    TIME,
    Schema,
    error_response,
    json_response,
    page_of,
    ref,
)


def _path_id(name: str) -> Schema:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


def _query(name: str, schema: Schema, description: str) -> Schema:
    return {"name": name, "in": "query", "schema": schema, "description": description}


_AUTH = {"401": error_response("No API key, or not a valid one")}
_BODY_ERRORS = {
    "413": error_response("Body too large"),
    "415": error_response("Not application/json"),
}
_EVENT_ID, _ENDPOINT_ID = _path_id("event_id"), _path_id("endpoint_id")
_NO_EVENT = {"404": error_response("No such event in this account")}
_NO_ENDPOINT = {"404": error_response("No such endpoint in this account")}
_STATUS = {"type": "string", "enum": list(DELIVERY_STATUSES)}
_DISABLED = "endpoint_disabled: the endpoint is disabled"


def event_paths(list_params: list[Schema]) -> Schema:
    """The routes' descriptions; ``list_params`` (``limit``, ``cursor``) are the document's
    own, so every list in it is described alike."""
    return {
        "/v1/events": {
            "get": {
                "summary": "The event log, newest first",
                "parameters": [
                    *list_params,
                    _query("type", {"type": "string", "enum": list(EVENT_TYPES)}, "Only this type"),
                    _query("task_id", {"type": "string"}, "Only events about this task"),
                    _query("after", TIME, "Only events created after this instant (exclusive)"),
                    _query("before", TIME, "Only events created before this instant (exclusive)"),
                ],
                "responses": {
                    "200": json_response(page_of("Event")),
                    **_AUTH,
                    "400": error_response("Malformed limit, cursor, after or before"),
                    "422": error_response("Limit out of range, or an unknown type"),
                },
            }
        },
        "/v1/events/{event_id}": {
            "get": {
                "summary": "One event, with its payload as subscribers receive it",
                "parameters": [_EVENT_ID],
                "responses": {"200": json_response(ref("Event")), **_AUTH, **_NO_EVENT},
            }
        },
        "/v1/events/{event_id}/deliveries": {
            "get": {
                "summary": "Every delivery of the event, replays included, newest first",
                "parameters": [_EVENT_ID, *list_params],
                "responses": {
                    "200": json_response(page_of("Delivery")),
                    **_AUTH,
                    **_NO_EVENT,
                    **LIST_ERRORS,
                },
            }
        },
        "/v1/events/{event_id}/replay": {
            "post": {
                "summary": "Send the event again (same webhook-id), as new manual deliveries",
                "description": (
                    "With endpoint_id: to that endpoint only, whatever its event filter. Without:"
                    " to every endpoint subscribed now (enabled, not deleted, filter matching);"
                    " a ping only to the endpoint it tested. The body may be left out."
                ),
                "parameters": [_EVENT_ID],
                "requestBody": {
                    "required": False,
                    "content": {
                        "application/json": {
                            "schema": {"anyOf": [ref("EventReplay"), {"type": "null"}]}
                        }
                    },
                },
                "responses": {
                    "202": json_response(ref("Replayed"), "Queued for delivery"),
                    "400": error_response("Malformed JSON"),
                    **_AUTH,
                    "404": error_response(
                        "No such event, or endpoint_id is not an endpoint of yours"
                    ),
                    **_BODY_ERRORS,
                    "409": error_response(
                        f"{_DISABLED}, or event_purged: retention removed the payload"
                    ),
                    "422": error_response("Invalid field"),
                },
            }
        },
        "/v1/endpoints/{endpoint_id}/deliveries": {
            "get": {
                "summary": "The endpoint's deliveries, newest first",
                "parameters": [
                    _ENDPOINT_ID,
                    *list_params,
                    _query("status", _STATUS, "Only deliveries in this state"),
                ],
                "responses": {
                    "200": json_response(page_of("Delivery")),
                    **_AUTH,
                    **_NO_ENDPOINT,
                    "400": error_response("Malformed limit or cursor"),
                    "422": error_response("Limit out of range, or an unknown status"),
                },
            }
        },
        "/v1/endpoints/{endpoint_id}/recover": {
            "post": {
                "summary": "Send again every event whose delivery here failed in a window",
                "description": (
                    "The window is on the failed delivery's created_at: since <= created_at <"
                    " until (until omitted: no upper bound; until <= since: an empty window)."
                    " Each event is sent once, and not"
                    " at all if it has since been delivered here or is pending here, or if"
                    " retention has purged its payload. dry_run only counts (and works on a"
                    " disabled endpoint)."
                ),
                "parameters": [_ENDPOINT_ID],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": ref("EndpointRecover")}},
                },
                "responses": {
                    "200": json_response(ref("RecoverDryRun"), "Dry run: what would be sent"),
                    "202": json_response(ref("Recovered"), "Queued for delivery"),
                    "400": error_response("Malformed JSON, or since/until not RFC 3339"),
                    **_AUTH,
                    **_NO_ENDPOINT,
                    **_BODY_ERRORS,
                    "409": error_response(_DISABLED),
                    "422": error_response("Missing since, or an invalid field"),
                },
            }
        },
        "/v1/deliveries/{delivery_id}/attempts": {
            "get": {
                "summary": "Every attempt of a delivery, in the order made (oldest first)",
                "parameters": [_path_id("delivery_id"), *list_params],
                "responses": {
                    "200": json_response(page_of("Attempt")),
                    **_AUTH,
                    "404": error_response("No such delivery in this account"),
                    **LIST_ERRORS,
                },
            }
        },
    }


_DELIVERIES = {"type": "array", "items": ref("Delivery")}
_DELIVERY: Schema = {
    "id": {"type": "string", "pattern": "^dlv_"},
    "event_id": {"type": "string", "pattern": "^evt_"},
    "endpoint_id": {"type": "string", "pattern": "^ep_"},
    "status": {"type": "string", "enum": list(DELIVERY_STATUSES)},
    "attempts": {"type": "integer", "minimum": 0},
    "next_attempt_at": NULLABLE_TIME,
    "manual": {"type": "boolean", "description": "A replay or recovery someone asked for."},
    "last_status": {"type": ["integer", "null"]},
    "last_error": {"type": ["string", "null"]},
    "created_at": TIME,
    "updated_at": TIME,
}
_ATTEMPT: Schema = {
    "id": {"type": "string", "pattern": "^att_"},
    "delivery_id": {"type": "string", "pattern": "^dlv_"},
    "number": {"type": "integer", "minimum": 1},
    "status_code": {"type": ["integer", "null"]},
    "latency_ms": {"type": "integer", "minimum": 0},
    "response_body": {
        "type": "string",
        "description": "The start of the answer (4 KiB by default), as text.",
    },
    "error": {"type": ["string", "null"]},
    "manual": {"type": "boolean", "description": "Made for a replay or recovery."},
    "created_at": TIME,
}


def event_schemas() -> dict[str, Schema]:
    return {
        "Event": {
            "type": "object",
            "additionalProperties": False,
            "required": ["id", "type", "task_id", "created_at", "payload"],
            "properties": {
                "id": {"type": "string", "pattern": "^evt_"},
                "type": {"type": "string", "enum": list(EVENT_TYPES)},
                "task_id": {"type": ["string", "null"]},
                "created_at": TIME,
                "payload": {
                    "type": ["object", "null"],
                    "description": (
                        "The body subscribers receive: {type, timestamp, data}; null once the"
                        " retention policy has purged it."
                    ),
                    "required": ["type", "timestamp", "data"],
                    "properties": {
                        "type": {"type": "string"},
                        "timestamp": TIME,
                        "data": {"type": "object"},
                    },
                },
            },
        },
        "Delivery": {
            "type": "object",
            "additionalProperties": False,
            "required": list(_DELIVERY),
            "properties": _DELIVERY,
        },
        "Attempt": {
            "type": "object",
            "additionalProperties": False,
            "required": list(_ATTEMPT),
            "properties": _ATTEMPT,
        },
        "EventReplay": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "endpoint_id": {
                    "type": ["string", "null"],
                    "description": "Only this endpoint; omitted: every endpoint subscribed now.",
                }
            },
        },
        "EndpointRecover": {
            "type": "object",
            "additionalProperties": False,
            "required": ["since"],
            "properties": {
                "since": TIME,
                "until": NULLABLE_TIME,
                "dry_run": {"type": "boolean", "default": False},
            },
        },
        "Replayed": {
            "type": "object",
            "required": ["event_id", "deliveries"],
            "properties": {"event_id": {"type": "string"}, "deliveries": _DELIVERIES},
        },
        "Recovered": {
            "type": "object",
            "required": ["count", "deliveries"],
            "properties": {"count": {"type": "integer", "minimum": 0}, "deliveries": _DELIVERIES},
        },
        "RecoverDryRun": {
            "type": "object",
            "required": ["count", "dry_run"],
            "properties": {
                "count": {"type": "integer", "minimum": 0},
                "dry_run": {"type": "boolean", "const": True},
            },
        },
    }
