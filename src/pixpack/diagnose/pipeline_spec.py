"""``--pipeline`` strings: a preset name or a comma-separated list of op calls.

Examples::

    train                                   RandomResizedCrop(224), RandomHorizontalFlip(),
                                            Normalize(pack mean/std)  (the default)
    eval                                    Resize(256), CenterCrop(224), Normalize(pack)
    RandomResizedCrop(224, scale=(0.35, 1)),RandomHorizontalFlip(),Normalize(imagenet)

The string is parsed with :func:`ast.parse` and never evaluated: every element must be
a call of (or a bare name from) an allow-list of :mod:`pixpack.ops` classes, and every
argument a literal (numbers, strings, tuples, lists, True/False/None). ``Normalize``
also takes the names ``imagenet`` and ``pack`` (the pack's own mean/std, computed at
pack time); ``Normalize()`` alone means ``pack`` when the pack has statistics, else
``imagenet``.
"""

from __future__ import annotations

import ast
from collections.abc import Sequence
from typing import Any

from .. import ops
from ..errors import UsageError

__all__ = [
    "ALLOWED_OPS",
    "PRESETS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "parse_pipeline",
    "resolve_pipeline",
    "describe_pipeline",
    "op_name",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

ALLOWED_OPS: dict[str, Any] = {
    name: getattr(ops, name)
    for name in (
        "RandomResizedCrop",
        "Resize",
        "CenterCrop",
        "RandomCrop",
        "RandomHorizontalFlip",
        "RandomVerticalFlip",
        "RandomRotation",
        "RandomAffine",
        "ColorJitter",
        "RandomGrayscale",
        "Normalize",
        "ToOutput",
    )
}

PRESETS = {
    "train": "RandomResizedCrop(224),RandomHorizontalFlip(),Normalize(pack)",
    "eval": "Resize(256),CenterCrop(224),Normalize(pack)",
}


def _literal(node: ast.AST, where: str) -> Any:
    try:
        value = ast.literal_eval(node)
    except ValueError:
        raise UsageError(
            f"--pipeline: {where} must be a literal (number, string, tuple); "
            f"got {ast.unparse(node)!r}."
        ) from None
    return _tuples(value)


def _tuples(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return tuple(_tuples(v) for v in value)
    return value


def _stats(pack: Any, channels: int | None = None) -> tuple[tuple[float, ...], tuple[float, ...]]:
    meta = getattr(pack, "metadata", None) or {}
    mean, std = meta.get("mean"), meta.get("std")
    if mean and std:
        return tuple(float(m) for m in mean), tuple(float(s) for s in std)
    return IMAGENET_MEAN, IMAGENET_STD


def _normalize(args: list[ast.expr], kwargs: dict[str, ast.expr], pack: Any) -> Any:
    named = None
    if len(args) == 1 and not kwargs and isinstance(args[0], ast.Name):
        named = args[0].id
    elif len(args) == 1 and not kwargs and isinstance(args[0], ast.Constant) and isinstance(
        args[0].value, str
    ):
        named = args[0].value
    if not args and not kwargs:
        named = "pack"
    if named is not None:
        if named == "imagenet":
            return ops.Normalize(IMAGENET_MEAN, IMAGENET_STD)
        if named == "pack":
            return ops.Normalize(*_stats(pack))
        raise UsageError(
            f"--pipeline: Normalize({named}) is unknown; use Normalize(imagenet), "
            "Normalize(pack) or Normalize(mean=(...), std=(...))."
        )
    values = [_literal(a, "a Normalize argument") for a in args]
    keywords = {k: _literal(v, f"Normalize {k}=") for k, v in kwargs.items()}
    try:
        return ops.Normalize(*values, **keywords)
    except TypeError as exc:
        raise UsageError(f"--pipeline: Normalize: {exc}.") from None


def _build(node: ast.AST, pack: Any) -> Any:
    args: list[ast.expr] = []
    kwargs: dict[str, ast.expr] = {}
    if isinstance(node, ast.Name):
        name = node.id
    elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        name = node.func.id
        args = list(node.args)
        for kw in node.keywords:
            if kw.arg is None:
                raise UsageError(f"--pipeline: {name}: **kwargs are not allowed.")
            kwargs[kw.arg] = kw.value
    else:
        raise UsageError(
            f"--pipeline: {ast.unparse(node)!r} is not an op call; write e.g. "
            "'RandomResizedCrop(224),RandomHorizontalFlip()'."
        )
    if name not in ALLOWED_OPS:
        raise UsageError(
            f"--pipeline: unknown op {name!r}; choose from {', '.join(ALLOWED_OPS)} "
            f"or a preset ({', '.join(PRESETS)})."
        )
    if name == "Normalize":
        return _normalize(args, kwargs, pack)
    values = [_literal(a, f"{name} argument") for a in args]
    keywords = {k: _literal(v, f"{name} {k}=") for k, v in kwargs.items()}
    try:
        return ALLOWED_OPS[name](*values, **keywords)
    except TypeError as exc:
        raise UsageError(f"--pipeline: {name}: {exc}.") from None


def parse_pipeline(spec: str, pack: Any = None) -> list[Any]:
    """The op list for a ``--pipeline`` string (a preset name or op calls).

    ``pack`` supplies the mean/std for ``Normalize(pack)``.
    """
    text = spec.strip()
    text = PRESETS.get(text, text)
    if text in ("", "none"):
        return []
    try:
        tree = ast.parse(f"[{text}]", mode="eval")
    except SyntaxError as exc:
        raise UsageError(
            f"--pipeline: cannot parse {spec!r} ({exc.msg}); write e.g. "
            "'RandomResizedCrop(224),RandomHorizontalFlip(),Normalize(imagenet)'."
        ) from None
    body = tree.body
    if not isinstance(body, ast.List):  # pragma: no cover - guaranteed by the brackets
        raise UsageError(f"--pipeline: cannot parse {spec!r}.")
    return [_build(node, pack) for node in body.elts]


def resolve_pipeline(pipeline: Any, pack: Any = None) -> list[Any]:
    """A list of ops from a string, a :class:`pixpack.ops.Pipeline`, a sequence or None
    (None means the ``train`` preset)."""
    if pipeline is None:
        return parse_pipeline("train", pack)
    if isinstance(pipeline, str):
        return parse_pipeline(pipeline, pack)
    if isinstance(pipeline, ops.Pipeline):
        steps = list(pipeline.ops)
        if pipeline.normalize is not None:
            steps.append(pipeline.normalize)
        if pipeline.output is not None:
            steps.append(pipeline.output)
        return steps
    if isinstance(pipeline, Sequence):
        return list(pipeline)
    raise UsageError(
        f"pipeline must be a string, a pixpack.ops.Pipeline or a list of ops "
        f"(got {type(pipeline).__name__})."
    )


def op_name(op: Any) -> str:
    """A short display name: the class name for ops, ``__name__`` for callables."""
    if isinstance(op, type):
        return op.__name__
    if hasattr(op, "make_params") and hasattr(op, "apply"):
        return type(op).__name__
    return getattr(op, "__name__", None) or type(op).__name__


def describe_pipeline(steps: Sequence[Any]) -> str:
    """``RandomResizedCrop(224) > RandomHorizontalFlip > Normalize``, for reports."""
    parts = []
    for op in steps:
        name = op_name(op)
        size = getattr(op, "size", None)
        if size is not None and name in ("RandomResizedCrop", "Resize", "CenterCrop",
                                         "RandomCrop"):
            size = size[0] if isinstance(size, tuple) and size[0] == size[-1] else size
            name = f"{name}({size})"
        parts.append(name)
    return " > ".join(parts) if parts else "(no ops)"
