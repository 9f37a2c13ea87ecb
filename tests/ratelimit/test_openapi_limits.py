"""The OpenAPI document describes the limits: a 429 on every ``/v1`` operation (with
``Retry-After``), the ``RateLimit-*`` headers on each of its answers but the 401, and real
answers' headers and bodies match what it says."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from openapi_schema_validator import OAS31Validator

from tests.api.test_openapi import check_response, operations
from tests.ratelimit.helpers import limits_env, running
from tests.ratelimit.test_rate_limits import spend

LIMIT_HEADERS = {"RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset", "RateLimit-Policy"}


def conforms(value: str, header: dict[str, Any]) -> bool:
    """A header's text against its documented schema (integers are sent as digits)."""
    schema = header["schema"]
    coerced: Any = int(value) if schema.get("type") == "integer" and value.isdigit() else value
    return bool(OAS31Validator(schema).is_valid(coerced))


async def test_every_v1_operation_documents_429_and_the_quota_headers(tmp_path: Path) -> None:
    async with running(tmp_path, {}) as app:
        spec = (await app.http.get("/openapi.json")).json()
    v1 = {k: op for k, op in operations(spec).items() if k[0].startswith("/v1/")}
    assert len(v1) > 20
    for (path, method), op in v1.items():
        responses = op["responses"]
        assert "429" in responses, (method, path)
        retry_after = responses["429"]["headers"]["Retry-After"]
        # POST /v1/tasks may also refuse with too_many_tasks, which has no Retry-After.
        assert retry_after["required"] is ((path, method) != ("/v1/tasks", "post"))
        for status, response in responses.items():
            documented = set(response.get("headers", {}))
            if status == "401":
                assert not documented & LIMIT_HEADERS, (method, path)
            else:
                assert documented >= LIMIT_HEADERS, (method, path, status)
    open_ops = {k: op for k, op in operations(spec).items() if not k[0].startswith("/v1/")}
    for (path, method), op in open_ops.items():
        assert "429" not in op["responses"], (method, path)


async def test_real_answers_match_the_documented_headers(tmp_path: Path) -> None:
    async with running(tmp_path, limits_env(1, 5)) as app:
        spec = (await app.http.get("/openapi.json")).json()
        who = await app.caller()
        answers = await spend(app.http, who, 7)
    ok, refused = answers[0], answers[-1]
    assert (ok.status_code, refused.status_code) == (200, 429)
    for answer in (ok, refused):
        check_response(spec, answer, "/v1/account", "get")
        documented = spec["paths"]["/v1/account"]["get"]["responses"][str(answer.status_code)]
        for name, header in documented["headers"].items():
            value = answer.headers.get(name)
            assert value is not None, (answer.status_code, name)
            assert conforms(value, header), (name, value)
