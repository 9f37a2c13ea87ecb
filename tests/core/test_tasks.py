"""Task requests (one case per validation rule), the task object, and request fingerprints."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.core.ledger import (
    Change,
    Failure,
    Result,
    TaskState,
    TaskStatus,
    apply,
    initial_state,
)
from service.core.tasks import (
    Task,
    TaskSpec,
    parse_task_request,
    request_fingerprint,
    task_object,
)
from service.errors import ValidationFailed
from service.web.openapi_schemas import component_schemas
from tests.contract import TASK_FIELDS

MODELS = ("nano-banana-fast", "nano-banana", "nano-banana-pro", "nano-banana-2")
PROVIDERS = ("simulator", "kie", "banana2", "nanobananapro")
DEFAULT_PROVIDER = "simulator"
ASPECT_RATIOS = ("1:1", "3:2", "2:3", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9", "auto")
BASE: dict[str, Any] = {"prompt": "a red bicycle", "model": "nano-banana"}
IMG = "https://img.example.com/in.png"
MISSING = object()
T0 = 1_700_000_000_000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
RFC3339_Z = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")


def parse(body: object) -> TaskSpec:
    return parse_task_request(
        body, models=MODELS, providers=PROVIDERS, default_provider=DEFAULT_PROVIDER
    )


def body_with(**changes: Any) -> dict[str, Any]:
    body = dict(BASE)
    for name, value in changes.items():
        if value is MISSING:
            body.pop(name, None)
        else:
            body[name] = value
    return body


def url_of_length(n: int) -> str:
    head = "https://img.example.com/"
    return head + "a" * (n - len(head))


def compact_size(value: object) -> int:
    """The rule: metadata is measured as compact UTF-8 JSON."""
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))


def metadata_of_size(n_bytes: int, char: str = "x") -> dict[str, str]:
    overhead = compact_size({"k": ""})
    width = len(char.encode("utf-8"))
    value = {"k": char * ((n_bytes - overhead) // width)}
    assert compact_size(value) == n_bytes, "pick sizes the character width divides"
    return value


def rfc3339(ms: int) -> str:
    """An independent oracle for the contract's UTC timestamps."""
    moment = EPOCH + timedelta(milliseconds=ms)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


# --- validation: one case per rule --------------------------------------------------------------

INVALID = [
    # the body itself
    pytest.param([], None, id="body-list"),
    pytest.param("prompt", None, id="body-string"),
    pytest.param(None, None, id="body-null"),
    pytest.param(42, None, id="body-number"),
    # unknown fields (a typo must not silently fall back to a default)
    pytest.param(body_with(resolutoin="2k"), "resolutoin", id="unknown-typo"),
    pytest.param(body_with(Prompt="x"), "Prompt", id="unknown-case"),
    pytest.param(body_with(zeta=1, alpha=1), "alpha", id="unknown-first-sorted"),
    # prompt
    pytest.param(body_with(prompt=MISSING), "prompt", id="prompt-missing"),
    pytest.param(body_with(prompt=None), "prompt", id="prompt-null"),
    pytest.param(body_with(prompt=5), "prompt", id="prompt-number"),
    pytest.param(body_with(prompt=["a cat"]), "prompt", id="prompt-list"),
    pytest.param(body_with(prompt=""), "prompt", id="prompt-empty"),
    pytest.param(body_with(prompt="   "), "prompt", id="prompt-spaces"),
    pytest.param(body_with(prompt="\n\t \r"), "prompt", id="prompt-whitespace"),
    pytest.param(body_with(prompt="a" * 5001), "prompt", id="prompt-5001"),
    pytest.param(body_with(prompt="é" * 5001), "prompt", id="prompt-5001-non-ascii"),
    # model
    pytest.param(body_with(model=MISSING), "model", id="model-missing"),
    pytest.param(body_with(model=None), "model", id="model-null"),
    pytest.param(body_with(model="dall-e-3"), "model", id="model-unknown"),
    pytest.param(body_with(model="Nano-Banana"), "model", id="model-case"),
    pytest.param(body_with(model="nano-banana "), "model", id="model-trailing-space"),
    pytest.param(body_with(model=5), "model", id="model-number"),
    pytest.param(body_with(model=["nano-banana"]), "model", id="model-list"),
    # type
    pytest.param(body_with(type="video"), "type", id="type-unknown"),
    pytest.param(body_with(type="Edit"), "type", id="type-case"),
    pytest.param(body_with(type=1), "type", id="type-number"),
    pytest.param(body_with(type=""), "type", id="type-empty"),
    pytest.param(body_with(type="edit"), "images", id="edit-without-images"),
    pytest.param(body_with(type="edit", images=[]), "images", id="edit-with-empty-images"),
    pytest.param(body_with(type="text-to-image", images=[IMG]), "images", id="t2i-with-images"),
    # images
    pytest.param(body_with(images=IMG), "images", id="images-string"),
    pytest.param(body_with(images={"url": IMG}), "images", id="images-object"),
    pytest.param(body_with(images=[IMG] * 15), "images", id="images-15"),
    pytest.param(body_with(images=["ftp://example.com/a.png"]), "images", id="image-ftp"),
    pytest.param(body_with(images=["file:///etc/passwd"]), "images", id="image-file"),
    pytest.param(body_with(images=["javascript:alert(1)"]), "images", id="image-javascript"),
    pytest.param(body_with(images=["data:image/png;base64,AAAA"]), "images", id="image-data"),
    pytest.param(body_with(images=["img.example.com/a.png"]), "images", id="image-no-scheme"),
    pytest.param(body_with(images=["https://"]), "images", id="image-no-host"),
    pytest.param(body_with(images=["https:///a.png"]), "images", id="image-empty-host"),
    pytest.param(body_with(images=["http://[::1"]), "images", id="image-broken-ipv6"),
    pytest.param(body_with(images=[url_of_length(2049)]), "images", id="image-url-2049"),
    pytest.param(body_with(images=[5]), "images", id="image-number"),
    pytest.param(body_with(images=[None]), "images", id="image-null"),
    pytest.param(body_with(images=[IMG, "nope"]), "images", id="image-second-bad"),
    # aspect_ratio / resolution / output_format
    pytest.param(body_with(aspect_ratio="2:1"), "aspect_ratio", id="aspect-unknown"),
    pytest.param(body_with(aspect_ratio="1:1 "), "aspect_ratio", id="aspect-space"),
    pytest.param(body_with(aspect_ratio=1), "aspect_ratio", id="aspect-number"),
    pytest.param(body_with(resolution="8k"), "resolution", id="resolution-unknown"),
    pytest.param(body_with(resolution="1K"), "resolution", id="resolution-case"),
    pytest.param(body_with(resolution=1), "resolution", id="resolution-number"),
    pytest.param(body_with(output_format="webp"), "output_format", id="format-unknown"),
    pytest.param(body_with(output_format="PNG"), "output_format", id="format-case"),
    pytest.param(body_with(output_format=True), "output_format", id="format-bool"),
    # num_images
    pytest.param(body_with(num_images=0), "num_images", id="num-images-0"),
    pytest.param(body_with(num_images=5), "num_images", id="num-images-5"),
    pytest.param(body_with(num_images=-1), "num_images", id="num-images-negative"),
    pytest.param(body_with(num_images=True), "num_images", id="num-images-true"),
    pytest.param(body_with(num_images=False), "num_images", id="num-images-false"),
    pytest.param(body_with(num_images=2.5), "num_images", id="num-images-float"),
    pytest.param(body_with(num_images="2"), "num_images", id="num-images-string"),
    # seed
    pytest.param(body_with(seed=-1), "seed", id="seed-negative"),
    pytest.param(body_with(seed=2**32), "seed", id="seed-2-32"),
    pytest.param(body_with(seed=True), "seed", id="seed-bool"),
    pytest.param(body_with(seed=1.5), "seed", id="seed-float"),
    pytest.param(body_with(seed="7"), "seed", id="seed-string"),
    # provider
    pytest.param(body_with(provider="openai"), "provider", id="provider-unknown"),
    pytest.param(body_with(provider="Simulator"), "provider", id="provider-case"),
    pytest.param(body_with(provider=1), "provider", id="provider-number"),
    pytest.param(body_with(provider=""), "provider", id="provider-empty"),
    # metadata
    pytest.param(body_with(metadata=["a"]), "metadata", id="metadata-list"),
    pytest.param(body_with(metadata="a=b"), "metadata", id="metadata-string"),
    pytest.param(body_with(metadata=5), "metadata", id="metadata-number"),
    pytest.param(body_with(metadata=True), "metadata", id="metadata-bool"),
    pytest.param(body_with(metadata=metadata_of_size(4097)), "metadata", id="metadata-4097"),
    pytest.param(
        body_with(metadata=metadata_of_size(4098, "é")), "metadata", id="metadata-4098-bytes"
    ),
]


@pytest.mark.parametrize(("body", "field"), INVALID)
def test_invalid_requests_name_the_field(body: object, field: str | None) -> None:
    with pytest.raises(ValidationFailed) as caught:
        parse(body)
    assert caught.value.field == field
    assert caught.value.status_code == 422
    assert caught.value.message


VALID = [
    pytest.param(body_with(prompt="a" * 5000), id="prompt-5000"),
    pytest.param(body_with(prompt="é" * 5000), id="prompt-5000-non-ascii"),
    pytest.param(body_with(prompt="x"), id="prompt-1"),
    pytest.param(body_with(images=[IMG] * 14), id="images-14"),
    pytest.param(body_with(images=[url_of_length(2048)]), id="image-url-2048"),
    pytest.param(body_with(images=["http://img.example.com/a.png"]), id="image-http"),
    pytest.param(body_with(seed=0), id="seed-0"),
    pytest.param(body_with(seed=2**32 - 1), id="seed-max"),
    pytest.param(body_with(num_images=1), id="num-images-1"),
    pytest.param(body_with(num_images=4), id="num-images-4"),
    pytest.param(body_with(metadata=metadata_of_size(4096)), id="metadata-4096"),
    pytest.param(body_with(metadata=metadata_of_size(4096, "é")), id="metadata-4096-bytes"),
    pytest.param(body_with(metadata={}), id="metadata-empty"),
    pytest.param(body_with(metadata={"a": {"b": [1, None, True]}}), id="metadata-nested"),
    *(pytest.param(body_with(model=m), id=f"model-{m}") for m in MODELS),
    *(pytest.param(body_with(provider=p), id=f"provider-{p}") for p in PROVIDERS),
    *(pytest.param(body_with(aspect_ratio=a), id=f"aspect-{a}") for a in ASPECT_RATIOS),
    *(pytest.param(body_with(resolution=r), id=f"resolution-{r}") for r in ("1k", "2k", "4k")),
    *(pytest.param(body_with(output_format=f), id=f"format-{f}") for f in ("png", "jpeg")),
]


@pytest.mark.parametrize("body", VALID)
def test_valid_requests_are_accepted_as_given(body: dict[str, Any]) -> None:
    spec = parse(body)
    for name, value in body.items():
        shown = tuple(value) if name == "images" else value
        assert getattr(spec, name) == shown, name


def test_defaults_are_filled() -> None:
    spec = parse({"prompt": "a cat", "model": "nano-banana-fast"})
    assert spec == TaskSpec(
        prompt="a cat",
        model="nano-banana-fast",
        type="text-to-image",
        provider=DEFAULT_PROVIDER,
        images=(),
        aspect_ratio="auto",
        resolution="1k",
        output_format="png",
        num_images=1,
        seed=None,
        metadata={},
    )


def test_the_configured_default_provider_is_used() -> None:
    spec = parse_task_request(BASE, models=MODELS, providers=PROVIDERS, default_provider="kie")
    assert spec.provider == "kie"


def test_images_without_a_type_infer_an_edit() -> None:
    spec = parse(body_with(images=[IMG, "http://img.example.com/b.jpg"]))
    assert spec.type == "edit"
    assert spec.images == (IMG, "http://img.example.com/b.jpg")


def test_no_images_infers_text_to_image() -> None:
    assert parse(body_with(images=MISSING)).type == "text-to-image"


def test_an_empty_image_list_is_refused_not_guessed() -> None:
    # [] is neither an edit (no image) nor clearly text-to-image: say so instead of guessing.
    with pytest.raises(ValidationFailed) as caught:
        parse(body_with(images=[]))
    assert caught.value.field == "images"


def test_explicit_edit_with_images() -> None:
    assert parse(body_with(type="edit", images=[IMG])).type == "edit"


def test_a_full_request_round_trips_into_params() -> None:
    body = {
        "prompt": "a lighthouse at dusk",
        "model": "nano-banana-2",
        "type": "edit",
        "images": [IMG],
        "aspect_ratio": "16:9",
        "resolution": "4k",
        "output_format": "jpeg",
        "num_images": 3,
        "seed": 12345,
        "provider": "kie",
        "metadata": {"order": "A-17"},
    }
    spec = parse(body)
    assert spec.params == {
        "aspect_ratio": "16:9",
        "resolution": "4k",
        "output_format": "jpeg",
        "num_images": 3,
        "seed": 12345,
        "images": [IMG],
    }
    assert spec.metadata == {"order": "A-17"}
    assert (spec.prompt, spec.model, spec.type, spec.provider) == (
        "a lighthouse at dusk",
        "nano-banana-2",
        "edit",
        "kie",
    )


# --- validation: properties ---------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
KNOWN_FIELDS = (
    "prompt",
    "model",
    "type",
    "images",
    "aspect_ratio",
    "resolution",
    "output_format",
    "num_images",
    "seed",
    "provider",
    "metadata",
)
field_names = st.sampled_from(KNOWN_FIELDS)


@given(
    fields=st.dictionaries(field_names, json_values, max_size=5),
    on_base=st.booleans(),
)
def test_any_json_body_is_a_spec_or_a_validation_error(
    fields: dict[str, Any], on_base: bool
) -> None:
    body = {**BASE, **fields} if on_base else fields
    refused: ValidationFailed | None = None
    try:
        spec = parse(body)
    except ValidationFailed as exc:
        refused = exc
    if refused is not None:
        assert refused.field in KNOWN_FIELDS
        return
    assert spec.model in MODELS
    assert spec.provider in PROVIDERS
    assert 1 <= spec.num_images <= 4


valid_bodies = st.fixed_dictionaries(
    {
        "prompt": st.text(min_size=1, max_size=50).filter(lambda p: p.strip() and "\x00" not in p),
        "model": st.sampled_from(MODELS),
    },
    optional={
        "aspect_ratio": st.sampled_from(ASPECT_RATIOS),
        "resolution": st.sampled_from(("1k", "2k", "4k")),
        "output_format": st.sampled_from(("png", "jpeg")),
        "num_images": st.integers(min_value=1, max_value=4),
        "seed": st.integers(min_value=0, max_value=2**32 - 1),
        "provider": st.sampled_from(PROVIDERS),
        "metadata": st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=4),
        "images": st.lists(
            st.sampled_from([IMG, "http://a.example/x.jpg", "https://b.example:8443/y?z=1"]),
            min_size=1,
            max_size=14,
        ),
    },
)


@given(body=valid_bodies)
def test_valid_bodies_parse_to_what_they_say(body: dict[str, Any]) -> None:
    spec = parse(body)
    assert spec.prompt == body["prompt"]
    assert spec.model == body["model"]
    assert spec.type == ("edit" if body.get("images") else "text-to-image")
    assert spec.images == tuple(body.get("images", ()))
    assert spec.num_images == body.get("num_images", 1)
    assert spec.seed == body.get("seed")
    assert spec.provider == body.get("provider", DEFAULT_PROVIDER)
    assert spec.metadata == body.get("metadata", {})


def test_metadata_with_a_lone_surrogate_is_a_validation_error() -> None:
    body = json.loads('{"prompt": "a cat", "model": "nano-banana", "metadata": {"k": "\\ud800"}}')
    with pytest.raises(ValidationFailed) as caught:
        parse(body)
    assert caught.value.field == "metadata"


# --- the task object ----------------------------------------------------------------------------

IMAGE = Result("https://cdn.example.com/out.png", "image/png", 1024, 768)


def make_task(state: TaskState, **spec_changes: Any) -> Task:
    spec = parse(body_with(metadata={"order": "A-17", "note": "ünïcode"}, **spec_changes))
    return Task(
        id="task_01JD0Q0000000000000000000A",
        account_id="acct_01JD0Q0000000000000000000B",
        spec=spec,
        state=state,
        cost_credits=15,
        refunded_credits=0,
        created_at=T0,
    )


def running() -> TaskState:
    state = initial_state(T0)
    state = apply(state, Change(TaskStatus.SUBMITTED, provider_task_id="up-1"), T0 + 1_000).state
    return apply(state, Change(TaskStatus.RUNNING, progress=40), T0 + 2_000).state


def succeeded() -> TaskState:
    return apply(running(), Change(TaskStatus.SUCCEEDED, results=(IMAGE,)), T0 + 9_999).state


def failed() -> TaskState:
    boom = Failure("content_policy", "Refused.")
    return apply(running(), Change(TaskStatus.FAILED, failure=boom), T0 + 7_321).state


@pytest.mark.parametrize("state", [initial_state(T0), running(), succeeded(), failed()])
def test_task_object_has_exactly_the_contract_fields(state: TaskState) -> None:
    shown = task_object(make_task(state))
    assert set(shown) == TASK_FIELDS
    json.dumps(shown)  # must be JSON as is


@pytest.mark.parametrize("state", [initial_state(T0), running(), succeeded(), failed()])
def test_task_object_timestamps_are_rfc3339_utc(state: TaskState) -> None:
    shown = task_object(make_task(state))
    assert shown["created_at"] == rfc3339(T0)
    assert shown["updated_at"] == rfc3339(state.updated_at)
    assert RFC3339_Z.fullmatch(shown["created_at"])
    assert RFC3339_Z.fullmatch(shown["updated_at"])
    if state.status.terminal:
        assert state.completed_at is not None
        assert shown["completed_at"] == rfc3339(state.completed_at)
        assert RFC3339_Z.fullmatch(shown["completed_at"])
    else:
        assert shown["completed_at"] is None


def test_task_object_of_a_running_task() -> None:
    task = make_task(running())
    shown = task_object(task)
    assert shown["id"] == task.id
    assert shown["status"] == "running"
    assert shown["progress"] == 40
    assert shown["sequence"] == 3
    assert shown["provider_task_id"] == "up-1"
    assert shown["model"] == "nano-banana"
    assert shown["provider"] == DEFAULT_PROVIDER
    assert shown["type"] == "text-to-image"
    assert shown["prompt"] == BASE["prompt"]
    assert shown["params"] == task.spec.params
    assert shown["results"] == []
    assert shown["failure"] is None
    assert shown["cost_credits"] == 15
    assert shown["refunded_credits"] == 0
    assert shown["metadata"] == {"order": "A-17", "note": "ünïcode"}
    assert "account_id" not in shown


def test_task_object_of_a_succeeded_task_lists_results() -> None:
    shown = task_object(make_task(succeeded()))
    assert shown["status"] == "succeeded"
    assert shown["progress"] == 100
    assert shown["results"] == [
        {
            "url": IMAGE.url, "source_url": IMAGE.url, "content_type": IMAGE.content_type,
            "width": 1024, "height": 768, "bytes": None, "sha256": None,
        }
    ]  # fmt: skip


def test_a_kept_result_shows_a_fresh_link_and_the_provider_link_as_its_source() -> None:
    kept = Result(
        "https://cdn.provider.test/1.png", "image/webp", 640, 480, asset_id="ast_1",
        source_url="https://cdn.provider.test/1.png", bytes=2048, sha256="ab" * 32,
    )  # fmt: skip
    state = apply(running(), Change(TaskStatus.SUCCEEDED, results=(kept,)), T0 + 9_999).state
    shown = task_object(make_task(state), lambda asset_id: f"https://th.test/assets/{asset_id}")
    assert shown["results"] == [
        {
            "url": "https://th.test/assets/ast_1", "source_url": kept.source_url,
            "content_type": "image/webp", "width": 640, "height": 480, "bytes": 2048,
            "sha256": "ab" * 32,
        }
    ]  # fmt: skip
    with pytest.raises(ValueError, match="link"):
        task_object(make_task(state))  # a kept result is never shown without a fresh link


def test_task_object_of_a_failed_task_has_its_failure() -> None:
    shown = task_object(make_task(failed()))
    assert shown["status"] == "failed"
    assert shown["failure"] == {"code": "content_policy", "message": "Refused."}
    assert shown["results"] == []


def test_task_object_metadata_is_a_copy() -> None:
    task = make_task(running())
    task_object(task)["metadata"]["order"] = "changed"
    assert task.spec.metadata["order"] == "A-17"


def test_completed_at_zero_is_still_shown() -> None:
    state = apply(initial_state(0), Change(TaskStatus.FAILED), 0).state
    assert state.completed_at == 0
    assert task_object(make_task(state))["completed_at"] == rfc3339(0)


# --- request fingerprints -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ({"prompt": "a", "model": "m"}, {"model": "m", "prompt": "a"}),
        (
            {"metadata": {"a": 1, "b": {"x": 1, "y": 2}}, "prompt": "p"},
            {"prompt": "p", "metadata": {"b": {"y": 2, "x": 1}, "a": 1}},
        ),
        (
            json.loads('{"prompt": "a",\n  "seed": 1}'),
            json.loads('{"seed":1,"prompt":"a"}'),
        ),
    ],
)
def test_fingerprint_ignores_key_order_and_whitespace(first: object, second: object) -> None:
    assert request_fingerprint(first) == request_fingerprint(second)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ({"prompt": "a"}, {"prompt": "b"}),
        ({"prompt": "a"}, {"prompt": "a "}),
        ({"seed": 1}, {"seed": 2}),
        ({"seed": 1}, {"seed": "1"}),
        ({"seed": 1}, {"seed": 1.5}),
        ({"seed": 1}, {"seed": True}),
        ({"seed": None}, {}),
        ({"images": ["a", "b"]}, {"images": ["b", "a"]}),
        ({"prompt": "a", "metadata": {}}, {"prompt": "a"}),
        ({"metadata": {"a": 1}}, {"metadata": {"a": [1]}}),
    ],
)
def test_fingerprint_differs_for_different_bodies(first: object, second: object) -> None:
    assert request_fingerprint(first) != request_fingerprint(second)


@given(body=st.dictionaries(st.text(max_size=8), json_values, max_size=6))
def test_fingerprint_is_stable_under_reordering_and_reformatting(body: dict[str, Any]) -> None:
    fingerprint = request_fingerprint(body)
    assert re.fullmatch(r"[0-9a-f]{64}", fingerprint)
    assert request_fingerprint(dict(reversed(list(body.items())))) == fingerprint
    assert request_fingerprint(json.loads(json.dumps(body, indent=3))) == fingerprint


def test_fingerprint_of_any_json_body_does_not_raise() -> None:
    body = json.loads('{"prompt": "a\\ud800", "model": "nano-banana"}')
    assert re.fullmatch(r"[0-9a-f]{64}", request_fingerprint(body))


def test_an_integral_float_is_a_whole_number() -> None:
    # JSON has one number type: 3.0 is the integer 3 (and a schema says so too).
    assert parse(body_with(num_images=3.0)).num_images == 3


# -- image URLs: what the OpenAPI document allows, exactly ------------------------------------

_DOCUMENTED_IMAGE = component_schemas(list(MODELS), list(PROVIDERS))["TaskCreate"]["properties"][
    "images"
]["items"]
#: the URL form of an ``images`` entry (the other form is an upload's id)
DOCUMENTED_IMAGE_URL = _DOCUMENTED_IMAGE["anyOf"][0]
DOCUMENTED_UPLOAD_ID = _DOCUMENTED_IMAGE["anyOf"][1]


@given(st.from_regex(DOCUMENTED_UPLOAD_ID["pattern"], fullmatch=True))
def test_an_upload_id_is_accepted_as_an_image(upload_id: str) -> None:
    assert parse(body_with(images=[upload_id])).images == (upload_id,)


@pytest.mark.parametrize(
    "url",
    [
        "http://img.example.com:04900*",  # a port that is not a number (schemathesis found it)
        "http://user@img.example.com/a.png",
        "HTTP://img.example.com/a.png",
        "http://img.example.com?size=1",
        "http://[::1]/a.png",
        "http://img_host.example.com/a.png",
    ],
)
def test_an_image_url_outside_the_documented_shape_is_refused(url: str) -> None:
    assert re.fullmatch(DOCUMENTED_IMAGE_URL["pattern"], url) is None
    with pytest.raises(ValidationFailed) as caught:
        parse(body_with(images=[url]))
    assert caught.value.field == "images"


@given(
    st.from_regex(DOCUMENTED_IMAGE_URL["pattern"], fullmatch=True),
    st.sampled_from(["", "*", "@", " ", "[", "é", "\n", ":", "/x?y=1"]),
)
def test_an_image_url_is_accepted_exactly_when_the_document_allows_it(url: str, tail: str) -> None:
    candidate = url + tail
    documented = (
        len(candidate) <= DOCUMENTED_IMAGE_URL["maxLength"]
        and re.fullmatch(DOCUMENTED_IMAGE_URL["pattern"], candidate) is not None
    )
    if documented:
        assert parse(body_with(images=[candidate])).images == (candidate,)
    else:
        with pytest.raises(ValidationFailed):
            parse(body_with(images=[candidate]))
