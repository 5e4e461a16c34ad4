"""Run one benchmark configuration in this process: ``worker.py MODULE FUNC CFG_JSON OUT_JSON``.

run.py starts one of these per configuration (with the FFCV or DALI venv's python
where needed) and measures its process tree's memory from outside.
"""

from __future__ import annotations

import importlib
import json
import sys
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> int:
    module_name, func_name, cfg_path, out_path = sys.argv[1:5]
    cfg = json.loads(Path(cfg_path).read_text())
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
    Path(out_path).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
