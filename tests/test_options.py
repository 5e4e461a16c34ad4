"""Option dataclasses validate their fields with one-line UsageErrors."""

from __future__ import annotations

import dataclasses

import pytest

from pixpack.errors import UsageError
from pixpack.options import LoaderOptions, PackOptions


@pytest.mark.parametrize(
    "kwargs",
    [
        {"mode": "png"},
        {"quality": 0},
        {"quality": 101},
        {"max_side": 4},
        {"channels": 2},
        {"workers": 0},
    ],
)
def test_pack_options_reject_bad_values(kwargs: dict) -> None:
    with pytest.raises(UsageError) as info:
        PackOptions(**kwargs)
    assert "\n" not in str(info.value)
    assert "got" in str(info.value)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"batch_size": 0},
        {"seed": -1},
        {"workers": 0},
        {"prefetch": 0},
        {"on_error": "ignore"},
        {"rank": 2, "world_size": 2},
        {"world_size": 0},
        {"batch_size": 10**9},
        {"batch_size": 65537},
        {"device": "tpu"},
        {"device": "cuda:x"},
        {"device": "meta"},
    ],
)
def test_loader_options_reject_bad_values(kwargs: dict) -> None:
    with pytest.raises(UsageError):
        LoaderOptions(**kwargs)


def test_options_are_frozen_and_content_key_ignores_runtime_fields() -> None:
    options = PackOptions(mode="jpeg", quality=80, max_side=256)
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.mode = "raw"  # type: ignore[misc]
    assert options.content_key() == PackOptions(
        mode="jpeg", quality=80, max_side=256, workers=1, quiet=True
    ).content_key()
    assert PackOptions(mode="raw", quality=50).content_key() == PackOptions(mode="raw").content_key()


def test_loader_rejects_an_absurd_batch_or_device_before_allocating(tmp_path) -> None:
    """On an 8-sample pack these reached torch (RuntimeError) instead of a UsageError."""
    import numpy as np

    from pixpack import Loader
    from pixpack.write import pack

    images = [(np.full((8, 8, 3), i, np.uint8), i % 2) for i in range(8)]
    out = pack(images, tmp_path / "tiny.pixpack", workers=1, quiet=True).path
    with pytest.raises(UsageError, match="batch_size must be an integer from 1 to 65536"):
        Loader(out, batch_size=10**9)
    with pytest.raises(UsageError, match="device must be 'cpu', 'cuda' or 'cuda:<ind"):
        Loader(out, batch_size=4, device="tpu")
    assert LoaderOptions(batch_size=65536, device="cuda:1").device == "cuda:1"
