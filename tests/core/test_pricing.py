"""Pricing: the real config's figures, the rules of the formula, and a strict loader."""

from __future__ import annotations

import tomllib
from fractions import Fraction
from itertools import product
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.core.pricing import TASK_TYPES, PricingTable

CONFIG = Path(__file__).parents[2] / "config" / "pricing.toml"
REAL = PricingTable.from_mapping(tomllib.loads(CONFIG.read_text(encoding="utf-8")))
CONTRACT_MODELS = ("nano-banana-fast", "nano-banana", "nano-banana-pro", "nano-banana-2")
RESOLUTIONS = ("1k", "2k", "4k")


def table(credits: int = 5, **resolutions: float) -> PricingTable:
    return PricingTable.from_mapping(
        {
            "models": {"m": {"text-to-image": credits, "edit": credits}},
            "resolutions": resolutions or {"1k": 1.0},
        }
    )


def valid_mapping() -> dict[str, Any]:
    return {
        "models": {"m": {"text-to-image": 5, "edit": 6}},
        "resolutions": {"1k": 1.0, "2k": 1.5},
    }


# --- the real config ----------------------------------------------------------------------------


def test_real_config_offers_the_contract_models() -> None:
    assert set(CONTRACT_MODELS) <= set(REAL.models)


def test_real_config_has_the_contract_resolutions() -> None:
    assert set(REAL.resolutions) == set(RESOLUTIONS)


@pytest.mark.parametrize(
    ("model", "task_type", "credits"),
    [
        ("nano-banana-fast", "text-to-image", 5),
        ("nano-banana-fast", "edit", 5),
        ("nano-banana", "text-to-image", 15),
        ("nano-banana", "edit", 15),
        ("nano-banana-pro", "text-to-image", 20),
        ("nano-banana-pro", "edit", 20),
        ("nano-banana-2", "text-to-image", 20),
        ("nano-banana-2", "edit", 24),
    ],
)
def test_seed_figures_at_1k(model: str, task_type: str, credits: int) -> None:
    assert REAL.price(model, task_type, "1k", 1) == credits


@pytest.mark.parametrize(
    ("model", "task_type", "resolution"),
    list(product(REAL.models, TASK_TYPES, ("2k", "4k"))),
)
def test_higher_resolutions_cost_strictly_more(model: str, task_type: str, resolution: str) -> None:
    assert REAL.price(model, task_type, resolution, 1) > REAL.price(model, task_type, "1k", 1)


@pytest.mark.parametrize(("model", "task_type"), list(product(REAL.models, TASK_TYPES)))
def test_4k_costs_at_least_2k(model: str, task_type: str) -> None:
    assert REAL.price(model, task_type, "4k", 1) >= REAL.price(model, task_type, "2k", 1)


@pytest.mark.parametrize(
    ("model", "task_type", "resolution", "num_images"),
    list(product(REAL.models, TASK_TYPES, RESOLUTIONS, range(1, 5))),
)
def test_num_images_multiplies(
    model: str, task_type: str, resolution: str, num_images: int
) -> None:
    one = REAL.price(model, task_type, resolution, 1)
    assert REAL.price(model, task_type, resolution, num_images) == one * num_images


@pytest.mark.parametrize(
    ("model", "task_type", "resolution"),
    [
        ("dall-e", "text-to-image", "1k"),
        ("nano-banana", "video", "1k"),
        ("nano-banana", "edit", "8k"),
    ],
)
def test_price_of_something_not_in_the_table_is_a_key_error(
    model: str, task_type: str, resolution: str
) -> None:
    with pytest.raises(KeyError):
        REAL.price(model, task_type, resolution, 1)


# --- the rounding rule --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("credits", "multiplier", "expected"),
    [
        (5, 1.5, 8),  # 7.5 → 8
        (3, 1.5, 5),  # 4.5 → 5
        (15, 1.5, 23),  # 22.5 → 23
        (7, 2.0, 14),  # exact stays exact
        (10, 1.1, 11),  # 11 exactly, though 10 * 1.1 in binary floats is 11.000000000000002
        (3, 1.1, 4),  # 3.3 → 4
        (1, 1.01, 2),
        (0, 1.5, 0),
        (4, 0.5, 2),
        (5, 0.5, 3),
    ],
)
def test_per_image_price_rounds_up_exactly(credits: int, multiplier: float, expected: int) -> None:
    priced = table(credits, x=multiplier)
    assert priced.price("m", "edit", "x", 1) == expected


@given(
    credits=st.integers(min_value=0, max_value=1000),
    tenths=st.integers(min_value=1, max_value=50),
    num_images=st.integers(min_value=1, max_value=4),
)
def test_price_is_the_smallest_whole_credit_covering_the_exact_product(
    credits: int, tenths: int, num_images: int
) -> None:
    multiplier = tenths / 10  # a one-decimal TOML literal such as 1.5 or 2.3
    exact = credits * Fraction(tenths, 10)
    per_image = table(credits, x=multiplier).price("m", "text-to-image", "x", 1)
    assert per_image - 1 < exact <= per_image
    assert (
        table(credits, x=multiplier).price("m", "edit", "x", num_images) == per_image * num_images
    )


def test_integer_multipliers_are_accepted() -> None:
    assert table(5, x=3).price("m", "edit", "x", 2) == 30


# --- from_mapping errors ------------------------------------------------------------------------


def _with(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    data = valid_mapping()
    target = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return data


def _without(*path: str) -> dict[str, Any]:
    data = valid_mapping()
    target = data
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    return data


BAD_MAPPINGS = [
    pytest.param(_with(("currency",), "eur"), "currency", id="unknown-top-level-key"),
    pytest.param(_without("models"), "models", id="no-models"),
    pytest.param(_with(("models",), {}), "models", id="empty-models"),
    pytest.param(_with(("models",), ["m"]), "models", id="models-not-a-table"),
    pytest.param(_without("models", "m", "edit"), "models.m", id="missing-edit"),
    pytest.param(_without("models", "m", "text-to-image"), "models.m", id="missing-text-to-image"),
    pytest.param(_with(("models", "m", "video"), 5), "models.m", id="extra-type"),
    pytest.param(_with(("models", "m"), 5), "models.m", id="model-not-a-table"),
    pytest.param(_with(("models", "m", "edit"), -1), "models.m.edit", id="negative-credits"),
    pytest.param(_with(("models", "m", "edit"), True), "models.m.edit", id="bool-credits"),
    pytest.param(_with(("models", "m", "edit"), 5.0), "models.m.edit", id="float-credits"),
    pytest.param(_with(("models", "m", "edit"), "5"), "models.m.edit", id="string-credits"),
    pytest.param(_without("resolutions"), "resolutions", id="no-resolutions"),
    pytest.param(_with(("resolutions",), {}), "resolutions", id="empty-resolutions"),
    pytest.param(_with(("resolutions", "2k"), 0), "resolutions.2k", id="zero-multiplier"),
    pytest.param(_with(("resolutions", "2k"), -1.5), "resolutions.2k", id="negative-multiplier"),
    pytest.param(_with(("resolutions", "2k"), True), "resolutions.2k", id="bool-multiplier"),
    pytest.param(_with(("resolutions", "2k"), "1.5"), "resolutions.2k", id="string-multiplier"),
    pytest.param(_with(("resolutions", "2k"), [1.5]), "resolutions.2k", id="list-multiplier"),
]


@pytest.mark.parametrize(("data", "names"), BAD_MAPPINGS)
def test_from_mapping_refuses_and_names_the_key(data: dict[str, Any], names: str) -> None:
    with pytest.raises(ValueError, match=names.replace(".", r"\.")) as caught:
        PricingTable.from_mapping(data)
    assert names in str(caught.value)


def test_valid_mapping_loads() -> None:
    loaded = PricingTable.from_mapping(valid_mapping())
    assert loaded.models == ("m",)
    assert loaded.price("m", "edit", "2k", 1) == 9


@pytest.mark.parametrize("factor", [float("inf"), float("nan")])
def test_non_finite_multiplier_is_refused_naming_the_key(factor: float) -> None:
    # TOML allows `2k = inf` and `2k = nan`; the docstring promises the error names the bad key.
    with pytest.raises(ValueError, match=r"resolutions\.2k"):
        PricingTable.from_mapping(_with(("resolutions", "2k"), factor))
