"""The --pipeline parser: presets, literal arguments, Normalize stats, and refusals."""

from __future__ import annotations

import pytest

from pixpack import ops
from pixpack.diagnose import PRESETS, parse_pipeline, resolve_pipeline
from pixpack.diagnose.pipeline_spec import IMAGENET_MEAN, IMAGENET_STD, describe_pipeline
from pixpack.errors import UsageError


class _FakePack:
    def __init__(self) -> None:
        self.metadata = {"mean": [0.5, 0.4, 0.3], "std": [0.2, 0.25, 0.3]}


def test_train_preset_uses_pack_statistics() -> None:
    steps = parse_pipeline("train", _FakePack())
    assert [type(s).__name__ for s in steps] == [
        "RandomResizedCrop",
        "RandomHorizontalFlip",
        "Normalize",
    ]
    assert steps[0].size == (224, 224)
    assert steps[2].mean == (0.5, 0.4, 0.3) and steps[2].std == (0.2, 0.25, 0.3)


def test_eval_preset_and_default() -> None:
    steps = parse_pipeline("eval")
    assert [type(s).__name__ for s in steps] == ["Resize", "CenterCrop", "Normalize"]
    # No pack statistics: Normalize(pack) falls back to ImageNet's.
    assert steps[2].mean == IMAGENET_MEAN
    assert set(PRESETS) == {"train", "eval"}
    assert [type(s) for s in resolve_pipeline(None)] == [type(s) for s in parse_pipeline("train")]


def test_explicit_calls_with_keywords_lists_and_bare_names() -> None:
    steps = parse_pipeline(
        "RandomResizedCrop(160, scale=[0.35, 1]), RandomHorizontalFlip,"
        "ColorJitter(0.4, 0.4, 0.4), Normalize(imagenet), ToOutput('float16', 'channels_last')"
    )
    assert steps[0] == ops.RandomResizedCrop(160, scale=(0.35, 1.0))
    assert steps[1] == ops.RandomHorizontalFlip()
    assert steps[2] == ops.ColorJitter(0.4, 0.4, 0.4)
    assert steps[3] == ops.Normalize(IMAGENET_MEAN, IMAGENET_STD)
    assert steps[4] == ops.ToOutput("float16", "channels_last")
    assert parse_pipeline("Normalize(mean=(0.5,), std=(0.5,))")[0].mean == (0.5,)
    assert parse_pipeline("none") == []


@pytest.mark.parametrize(
    "spec, fragment",
    [
        ("__import__('os').system('true')", "not an op call"),
        ("os.system('true')", "not an op call"),
        ("eval('1')", "unknown op"),
        ("PythonOp(print)", "unknown op"),
        ("RandomResizedCrop(size)", "must be a literal"),
        ("RandomResizedCrop(224 * 2)", "must be a literal"),
        ("RandomResizedCrop(**{'size': 3})", "not allowed"),
        ("Normalize(cifar)", "unknown"),
        ("RandomResizedCrop(224", "cannot parse"),
        ("RandomResizedCrop(224, bogus=1)", "RandomResizedCrop"),
        ("RandomResizedCrop(-3)", "RandomResizedCrop"),
    ],
)
def test_refuses_anything_but_allowed_literal_calls(spec: str, fragment: str) -> None:
    with pytest.raises(UsageError, match=None) as info:
        parse_pipeline(spec)
    assert fragment in str(info.value)


def test_resolve_accepts_objects() -> None:
    pipe = ops.Pipeline([ops.CenterCrop(32), ops.Normalize(0.5, 0.5)])
    steps = resolve_pipeline(pipe)
    assert steps[0] == ops.CenterCrop(32) and isinstance(steps[1], ops.Normalize)
    assert isinstance(steps[2], ops.ToOutput)
    assert resolve_pipeline([ops.CenterCrop(8)]) == [ops.CenterCrop(8)]
    with pytest.raises(UsageError):
        resolve_pipeline(42)
    assert describe_pipeline(parse_pipeline("eval")) == "Resize(256) > CenterCrop(224) > Normalize"
