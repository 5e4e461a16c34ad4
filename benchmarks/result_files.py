"""Writing one benchmark run's results: ``results/<name>.json`` (the data) and
``results/<name>.md`` (its report), the pair every benchmark script commits."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def write_run(name: str, doc: dict[str, Any], markdown: str) -> Path:
    """Write the run's JSON and markdown; returns the JSON's path."""
    out = RESULTS / f"{name}.json"
    out.write_text(json.dumps(doc, indent=1, default=str))
    out.with_suffix(".md").write_text(markdown)
    print(f"wrote {out} and .md")
    return out
