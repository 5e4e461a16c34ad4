"""Run one benchmark configuration in this process: ``worker.py MODULE FUNC CFG_JSON OUT_JSON``.

run.py starts one of these per configuration (with the FFCV or DALI venv's python
where needed) and measures its process tree's memory from outside.

``"pin_cpu": true`` in the configuration pins the whole process to one CPU before
anything else is imported: Linux affinity is per thread and inherited by threads
created later, so pinning here, while the process has one thread, also pins the
thread pools numpy, OpenCV, torch or pixpack start afterwards.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def _pin(cfg: dict) -> list[int]:
    """Pin to the highest-numbered usable CPU if asked (CPU 0 takes more interrupts)."""
    if cfg.get("pin_cpu"):
        os.sched_setaffinity(0, {max(os.sched_getaffinity(0))})
    return sorted(os.sched_getaffinity(0))


def main() -> int:
    module_name, func_name, cfg_path, out_path = sys.argv[1:5]
    cfg = json.loads(Path(cfg_path).read_text())
    cpus = _pin(cfg)
    from loaders.common import Unavailable

    try:
        module = importlib.import_module(f"loaders.{module_name}")
        result = {"status": "ok", "result": getattr(module, func_name)(cfg)}
    except Unavailable as exc:
        result = {"status": "unavailable", "error": str(exc)}
    except Exception as exc:  # report any failure as data; the runner goes on
        result = {
            "status": "failed",
            "error": f"{type(exc).__name__}: {exc}",
            "traceback": traceback.format_exc()[-3000:],
        }
    result["cpus"] = cpus
    Path(out_path).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
