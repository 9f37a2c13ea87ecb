"""The OpenAPI description of the moderation decision log (path and component schema), merged
into the document by ``openapi.build_spec``."""

from __future__ import annotations

from service.core.moderation import CATEGORIES
from service.store.base import MODERATION_STAGES, MODERATION_VERDICTS
from service.web.openapi_schemas import TIME, Schema, error_response, json_response, page_of

_CATEGORIES = sorted(CATEGORIES)


def _filter(name: str, values: list[str], description: str) -> Schema:
    # empty is no filter, as a form's unset field would send
    schema = {"type": "string", "enum": ["", *values]}
    return {"name": name, "in": "query", "schema": schema, "description": description}


def moderation_paths(list_params: list[Schema]) -> Schema:
    """``list_params`` (``limit``, ``cursor``) are the document's own, so every list in it is
    described alike."""
    return {
        "/v1/moderation/decisions": {
            "get": {
                "summary": "Every screening decision, allowed or blocked, newest first",
                "description": (
                    "One decision per stage that screened a submitted prompt: the rules, then"
                    " the external moderation API when one is configured and the rules allowed"
                    " it. A key sees its own account's decisions; an admin key every account's."
                ),
                "parameters": [
                    *list_params,
                    _filter("verdict", list(MODERATION_VERDICTS), "Only this verdict"),
                    _filter("category", _CATEGORIES, "Only blocks of this category"),
                    {
                        "name": "account_id",
                        "in": "query",
                        "schema": {"type": "string"},
                        "description": (
                            "Admin keys: only this account. Any other key sees its own account"
                            " alone, so another account's id matches nothing."
                        ),
                    },
                ],
                "responses": {
                    "200": json_response(page_of("ModerationDecision")),
                    "401": error_response("No API key, or not a valid one"),
                    "400": error_response("Malformed limit or cursor"),
                    "422": error_response("Limit out of range, or an unknown verdict or category"),
                },
            }
        }
    }


def moderation_schemas() -> dict[str, Schema]:
    return {
        "ModerationDecision": {
            "type": "object",
            "additionalProperties": False,
            "required": [
                "id",
                "account_id",
                "key_id",
                "verdict",
                "stage",
                "rule_id",
                "category",
                "error",
                "prompt_sha256",
                "created_at",
            ],
            "properties": {
                "id": {"type": "string", "pattern": "^mod_"},
                "account_id": {"type": "string"},
                "key_id": {
                    "type": ["string", "null"],
                    "description": "The API key that submitted; null on decisions before keys "
                    "were recorded.",
                },
                "verdict": {"type": "string", "enum": list(MODERATION_VERDICTS)},
                "stage": {"type": "string", "enum": list(MODERATION_STAGES)},
                "rule_id": {
                    "type": ["string", "null"],
                    "description": "The rule that matched, or the external API's flagged "
                    "category names (comma-separated); null when nothing matched.",
                },
                "category": {
                    "type": ["string", "null"],
                    "enum": [*_CATEGORIES, None],
                    "description": "Null when allowed, or when blocked because the external "
                    "API gave no answer (see error).",
                },
                "error": {
                    "type": ["string", "null"],
                    "description": "Why the external API gave no answer (timeout, unreachable,"
                    " http_<status>, bad_response); [moderation] on_error then decided.",
                },
                "prompt_sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                "created_at": TIME,
            },
        }
    }
