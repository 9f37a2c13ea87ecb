"""The OpenAPI description of kept images: ``/assets/{id}``, result redirects and uploads."""

from __future__ import annotations

from service.core.images import IMAGE_TYPES
from service.web.openapi_schemas import Schema, error_response, json_response, ref

_AUTH = {"401": error_response("No API key, or not a valid one")}
_IMAGE = {"schema": {"type": "string", "format": "binary"}}


def asset_schemas() -> dict[str, Schema]:
    return {
        "Upload": {
            "type": "object",
            "required": [
                "id",
                "url",
                "content_type",
                "width",
                "height",
                "bytes",
                "sha256",
                "created_at",
            ],
            "properties": {
                "id": {"type": "string", "pattern": "^upl_"},
                "url": {"type": "string"},
                "content_type": {"type": "string", "enum": list(IMAGE_TYPES)},
                "width": {"type": "integer", "minimum": 1},
                "height": {"type": "integer", "minimum": 1},
                "bytes": {"type": "integer", "minimum": 1},
                "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                "created_at": {"type": "string", "format": "date-time"},
            },
        }
    }


def asset_paths() -> Schema:
    return {
        "/assets/{asset_id}": {
            "get": {
                "summary": "A kept image (a signed link: no API key)",
                "security": [],
                "parameters": [
                    {
                        "name": "asset_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                    },
                    {"name": "expires", "in": "query", "schema": {"type": "string"}},
                    {"name": "sig", "in": "query", "schema": {"type": "string"}},
                    {"name": "Range", "in": "header", "schema": {"type": "string"}},
                    {"name": "If-None-Match", "in": "header", "schema": {"type": "string"}},
                ],
                "responses": {
                    "200": {
                        "description": "The image",
                        "content": dict.fromkeys(IMAGE_TYPES, _IMAGE),
                    },
                    "206": {"description": "The range asked for"},
                    "304": {"description": "Not modified (If-None-Match)"},
                    "403": error_response("signature_invalid: a bad or expired link"),
                    "404": error_response("No such asset"),
                    "410": error_response("asset_expired: retention removed the bytes"),
                    "416": {"description": "Range not satisfiable"},
                },
            }
        },
        "/v1/tasks/{task_id}/results/{index}": {
            "get": {
                "summary": "Redirect (302) to a fresh link to one of a task's results",
                "parameters": [
                    {
                        "name": "task_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                    },
                    {"name": "index", "in": "path", "required": True, "schema": {"type": "string"}},
                ],
                "responses": {
                    "302": {"description": "To the kept image's signed link"},
                    **_AUTH,
                    "404": error_response("No such task, or no result at that index"),
                },
            }
        },
        "/v1/uploads": {
            "post": {
                "summary": "Keep an image (the raw body) for use in a task's images",
                "requestBody": {"required": True, "content": dict.fromkeys(IMAGE_TYPES, _IMAGE)},
                "responses": {
                    "201": json_response(ref("Upload"), "Kept"),
                    "400": error_response("Malformed Content-Length"),
                    **_AUTH,
                    "413": error_response("Larger than [assets] max_upload_bytes"),
                    "415": error_response("Not image/png, image/jpeg or image/webp"),
                    "422": error_response("invalid_image: not the image its type claims"),
                },
            }
        },
    }
