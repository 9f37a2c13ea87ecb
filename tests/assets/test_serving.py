"""``/assets/{id}`` and ``/v1/tasks/{id}/results/{i}``: signed links, ranges, validators, expiry
by retention; and ``POST /v1/uploads`` used by a task. Through the real app, on both backends."""

from __future__ import annotations

import hashlib
import io
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from PIL import Image

from service.retention import Retention
from tests.backends import writing
from tests.conftest import Caller
from tests.image_server import ImageServer, image_bytes
from tests.upstream.test_callback_rejections import Harness, encode, envelope

PNG = image_bytes("uploaded", "png", 120, 80)


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code


async def kept_task(h: Harness, caller: Caller, image_server: ImageServer) -> dict[str, Any]:
    task = await h.submitted_task(caller)
    url = image_server.url("served", width=300, height=200)
    body = encode(envelope("sim_abc", "success", resultJson=f'{{"resultUrls": ["{url}"]}}'))
    assert (await h.deliver(task["id"], body)).status_code == 200
    assert await h.settle() == 1
    return await h.get_task(caller, task["id"])


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


async def test_a_kept_result_is_served_whole_with_its_validators(
    h: Harness, caller: Caller, image_server: ImageServer
) -> None:
    [result] = (await kept_task(h, caller, image_server))["results"]
    link = path_of(result["url"])
    whole = await h.client.get(link)  # no API key: the link is the credential
    assert whole.status_code == 200
    original = image_bytes("served", "png", 300, 200)
    assert whole.content == original
    assert whole.headers["content-type"] == "image/png"
    assert whole.headers["content-length"] == str(len(original))
    assert whole.headers["etag"] == f'"{hashlib.sha256(original).hexdigest()}"'
    assert whole.headers["accept-ranges"] == "bytes"
    assert "max-age" in whole.headers["cache-control"]

    head = await h.client.head(link)
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == str(len(original))

    same = await h.client.get(link, headers={"If-None-Match": whole.headers["etag"]})
    assert same.status_code == 304
    assert same.content == b""
    other = await h.client.get(link, headers={"If-None-Match": '"something-else"'})
    assert other.status_code == 200


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [("bytes=0-9", 0, 10), ("bytes=10-", 10, None), ("bytes=-16", -16, None),
     ("bytes=5-5", 5, 6), ("bytes=3-999999", 3, None)],
)  # fmt: skip
async def test_a_range_is_a_206_with_exactly_those_bytes(
    h: Harness, caller: Caller, image_server: ImageServer, header: str, start: int, end: int | None
) -> None:
    [result] = (await kept_task(h, caller, image_server))["results"]
    original = image_bytes("served", "png", 300, 200)
    part = await h.client.get(path_of(result["url"]), headers={"Range": header})
    assert part.status_code == 206
    want = original[start:end]
    assert part.content == want
    first = start if start >= 0 else len(original) + start
    assert part.headers["content-range"] == (
        f"bytes {first}-{first + len(want) - 1}/{len(original)}"
    )
    assert part.headers["content-length"] == str(len(want))


async def test_unsatisfiable_and_ignored_ranges(
    h: Harness, caller: Caller, image_server: ImageServer
) -> None:
    [result] = (await kept_task(h, caller, image_server))["results"]
    link, size = path_of(result["url"]), result["bytes"]
    past = await h.client.get(link, headers={"Range": f"bytes={size}-"})
    assert past.status_code == 416
    assert past.headers["content-range"] == f"bytes */{size}"
    for ignored in ("bytes=0-1,5-6", "items=0-1", "bytes=9-3", "bytes=x-y"):
        whole = await h.client.get(link, headers={"Range": ignored})
        assert whole.status_code == 200, ignored
        assert len(whole.content) == size
    stale = await h.client.get(link, headers={"Range": "bytes=0-9", "If-Range": '"old"'})
    assert stale.status_code == 200


async def test_a_bad_or_expired_signature_is_403_and_unknown_is_404(
    h: Harness, caller: Caller, image_server: ImageServer
) -> None:
    [result] = (await kept_task(h, caller, image_server))["results"]
    parts = urlsplit(result["url"])
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert_error(await h.client.get(parts.path), 403, "signature_invalid")
    tampered = {**query, "sig": query["sig"][:-2] + ("AA" if query["sig"][-2:] != "AA" else "BB")}
    assert_error(
        await h.client.get(f"{parts.path}?{urlencode(tampered)}"), 403, "signature_invalid"
    )
    longer = {**query, "expires": str(int(query["expires"]) + 1)}
    assert_error(await h.client.get(f"{parts.path}?{urlencode(longer)}"), 403, "signature_invalid")
    # another asset's path with this one's signature
    assert_error(
        await h.client.get(f"/assets/ast_01M8YCZZZZZZZZZZZZZZZZZZZZ?{parts.query}"),
        403,
        "signature_invalid",
    )
    unknown = h.services.assets.links.url("ast_01M8YCZZZZZZZZZZZZZZZZZZZZ")
    assert_error(await h.client.get(path_of(unknown)), 404, "not_found")
    expired = {**query, "expires": "1000"}
    assert_error(await h.client.get(f"{parts.path}?{urlencode(expired)}"), 403, "signature_invalid")


async def test_the_result_route_redirects_to_a_fresh_link(
    h: Harness, caller: Caller, image_server: ImageServer
) -> None:
    task = await kept_task(h, caller, image_server)
    moved = await h.client.get(f"/v1/tasks/{task['id']}/results/0", headers=caller.headers)
    assert moved.status_code == 302
    assert "/assets/ast_" in moved.headers["location"]
    assert (await h.client.get(path_of(moved.headers["location"]))).status_code == 200
    for index in ("1", "-1", "x", "01x"):
        missing = await h.client.get(
            f"/v1/tasks/{task['id']}/results/{index}", headers=caller.headers
        )
        assert_error(missing, 404, "not_found")
    assert (await h.client.get(f"/v1/tasks/{task['id']}/results/0")).status_code == 401


async def test_retention_removes_the_bytes_and_the_link_answers_410(
    h: Harness, caller: Caller, image_server: ImageServer
) -> None:
    task = await kept_task(h, caller, image_server)
    [result] = task["results"]
    services = h.services
    settings = replace(services.settings.retention, asset_max_age_days=1)
    later = services.clock() + 2 * 86_400_000
    retention = Retention(services.store, settings, lambda: later, services.assets.store)
    purged = await retention.purge()
    assert purged.assets == 1
    assert await services.assets.store.size(result["sha256"]) is None
    assert_error(await h.client.get(path_of(result["url"])), 410, "asset_expired")
    # the task keeps the result's metadata and its source
    after = (await h.get_task(caller, task["id"]))["results"][0]
    assert (after["source_url"], after["sha256"], after["bytes"]) == (
        result["source_url"], result["sha256"], result["bytes"],
    )  # fmt: skip


async def test_retention_keeps_bytes_another_live_asset_shares(
    h: Harness, caller: Caller, image_server: ImageServer
) -> None:
    task = await kept_task(h, caller, image_server)
    [result] = task["results"]
    services = h.services
    # an upload of the same bytes (kept once), young when the result is old
    original = image_bytes("served", "png", 300, 200)
    headers = {**caller.headers, "Content-Type": "image/png"}
    upload = (await h.client.post("/v1/uploads", content=original, headers=headers)).json()
    now = services.clock()
    async with writing(services.store) as conn:
        await conn.execute(
            "UPDATE assets SET created_at = ? WHERE task_id = ?", (now - 3 * 86_400_000, task["id"])
        )
    settings = replace(services.settings.retention, asset_max_age_days=1)
    retention = Retention(services.store, settings, lambda: now, services.assets.store)
    assert (await retention.purge()).assets == 1
    assert_error(await h.client.get(path_of(result["url"])), 410, "asset_expired")
    assert (await h.client.get(path_of(upload["url"]))).content == original
    assert await services.assets.store.size(result["sha256"]) == len(original)
    # once the last one goes, so do the bytes
    later = Retention(services.store, settings, lambda: now + 2 * 86_400_000, services.assets.store)
    assert (await later.purge()).assets == 1
    assert await services.assets.store.size(result["sha256"]) is None


async def test_an_upload_is_kept_and_served(h: Harness, caller: Caller) -> None:
    response = await h.client.post(
        "/v1/uploads", content=PNG, headers={**caller.headers, "Content-Type": "image/png"}
    )
    assert response.status_code == 201, response.text
    upload = response.json()
    assert set(upload) == {
        "id", "url", "content_type", "width", "height", "bytes", "sha256", "created_at",
    }  # fmt: skip
    assert upload["id"].startswith("upl_")
    assert (upload["content_type"], upload["width"], upload["height"]) == ("image/png", 120, 80)
    assert (upload["bytes"], upload["sha256"]) == (len(PNG), hashlib.sha256(PNG).hexdigest())
    served = await h.client.get(path_of(upload["url"]))
    assert served.content == PNG


@pytest.mark.parametrize(
    ("content_type", "body", "status", "code"),
    [
        ("image/jpeg", PNG, 422, "invalid_image"),  # a PNG that says it is a JPEG
        ("image/png", b"<html>not an image</html>", 422, "invalid_image"),
        ("image/png", b"", 422, "invalid_image"),
        ("image/png", PNG[:40], 422, "invalid_image"),  # a header and nothing more
        ("text/plain", PNG, 415, "unsupported_media_type"),
        ("", PNG, 415, "unsupported_media_type"),
    ],
)
async def test_a_bad_upload_is_refused_and_nothing_is_kept(
    h: Harness, caller: Caller, content_type: str, body: bytes, status: int, code: str
) -> None:
    headers = {**caller.headers, "Content-Type": content_type}
    assert_error(await h.client.post("/v1/uploads", content=body, headers=headers), status, code)
    assert await h.count("SELECT COUNT(*) FROM assets") == 0
    staging = h.services.assets.store.staging
    assert list(staging.iterdir()) == []


async def test_an_upload_over_the_limit_is_413(h: Harness, caller: Caller) -> None:
    limit = h.services.settings.assets.max_upload_bytes
    big = Image.new("RGB", (10, 10))
    out = io.BytesIO()
    big.save(out, format="PNG")
    body = out.getvalue() + b"\0" * limit
    headers = {**caller.headers, "Content-Type": "image/png"}
    assert_error(await h.client.post("/v1/uploads", content=body, headers=headers), 413,
                 "payload_too_large")  # fmt: skip

    async def streamed() -> Any:  # no Content-Length: refused as the bytes pass the limit
        yield body

    chunked = await h.client.post("/v1/uploads", content=streamed(), headers=headers)
    assert_error(chunked, 413, "payload_too_large")
    assert await h.count("SELECT COUNT(*) FROM assets") == 0
    assert list(h.services.assets.store.staging.iterdir()) == []
    assert (await h.client.post("/v1/uploads", content=PNG)).status_code == 401


async def test_a_task_names_an_upload_by_id_or_link_and_the_provider_gets_a_link(
    h: Harness, caller: Caller, make_caller: Any
) -> None:
    headers = {**caller.headers, "Content-Type": "image/png"}
    upload = (await h.client.post("/v1/uploads", content=PNG, headers=headers)).json()
    by_id = await h.create_task(caller, images=[upload["id"]])
    by_link = await h.create_task(caller, images=[upload["url"], "https://img.example/b.png"])
    assert by_id["type"] == "edit"
    assert by_id["params"]["images"] == [upload["id"]]
    assert by_link["params"]["images"] == [upload["id"], "https://img.example/b.png"]

    from service.upstream import with_upload_links

    task = await h.store.get_task_by_id(by_link["id"])
    assert task is not None
    sent = with_upload_links(task, h.services.upstream.link)
    assert sent.spec.images[1] == "https://img.example/b.png"
    fetched = await h.client.get(path_of(sent.spec.images[0]))
    assert fetched.content == PNG  # what the provider downloads is the uploaded image

    stranger = await make_caller()
    refused = await h.client.post(
        "/v1/tasks",
        json={"prompt": "x", "model": "nano-banana", "images": [upload["id"]]},
        headers=stranger.headers,
    )
    assert_error(refused, 422, "validation_error")
    assert refused.json()["error"]["field"] == "images"
    unknown = await h.client.post(
        "/v1/tasks",
        json={"prompt": "x", "model": "nano-banana", "images": ["upl_01M8YCZZZZZZZZZZZZZZZZZZZZ"]},
        headers=caller.headers,
    )
    assert_error(unknown, 422, "validation_error")
