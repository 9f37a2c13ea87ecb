from __future__ import annotations

import pytest

from service.core.imagesize import dimensions
from service.core.tasks import ASPECT_RATIOS, RESOLUTIONS


@pytest.mark.parametrize(
    ("ratio", "resolution", "size"),
    [("1:1", "1k", (1024, 1024)), ("auto", "2k", (2048, 2048)), ("16:9", "1k", (1024, 576)),
     ("9:16", "1k", (576, 1024)), ("21:9", "4k", (4096, 1752)), ("3:2", "2k", (2048, 1368))],
)  # fmt: skip
def test_known_sizes(ratio: str, resolution: str, size: tuple[int, int]) -> None:
    assert dimensions(ratio, resolution) == size


@pytest.mark.parametrize("ratio", ASPECT_RATIOS)
@pytest.mark.parametrize("resolution", RESOLUTIONS)
def test_every_accepted_combination_keeps_its_shape(ratio: str, resolution: str) -> None:
    width, height = dimensions(ratio, resolution)
    assert max(width, height) == {"1k": 1024, "2k": 2048, "4k": 4096}[resolution]
    assert width % 8 == 0
    assert height % 8 == 0
    if ratio != "auto":
        w, h = (int(x) for x in ratio.split(":"))
        assert abs(width / height - w / h) < 0.02
