"""Measure a pack + pipeline on this machine, and name what limits it.

- :func:`bench`: images/s, MB/s, batch latency p50/p99 and time to first batch of a
  :class:`~pixpack.Loader` over the pack (``pixpack bench``);
- :func:`doctor`: each stage (storage cold/warm, decode, every op, conversion,
  host-to-device copy) timed alone, the bottleneck, and advice (``pixpack doctor``);
- :func:`parse_pipeline`: the safe ``--pipeline`` parser (presets ``train``/``eval``).
"""

from .bench import BenchResult, bench
from .doctor import Diagnosis, doctor
from .pipeline_spec import PRESETS, parse_pipeline, resolve_pipeline
from .report import format_bench, format_diagnosis, to_json
from .stages import StageTiming

__all__ = [
    "BenchResult",
    "bench",
    "Diagnosis",
    "doctor",
    "StageTiming",
    "PRESETS",
    "parse_pipeline",
    "resolve_pipeline",
    "format_bench",
    "format_diagnosis",
    "to_json",
]
