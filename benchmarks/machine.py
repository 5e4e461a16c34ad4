"""The machine and library versions a benchmark ran on, for the results files."""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil

__all__ = ["machine_info", "host_kind", "versions", "git_revision", "SYSTEM_PACKAGES"]

SYSTEM_PACKAGES = (
    "torch",
    "torchvision",
    "numpy",
    "pillow",
    "opencv-python-headless",
    "simplejpeg",
    "pixpack",
)


def _cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
        match = re.search(r"^model name\s*:\s*(.+)$", text, re.M)
        if match:
            return match.group(1).strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _disk(path: Path) -> dict[str, Any]:
    """File system, device and whether it is rotational, for the data directory."""
    path = path.resolve()
    best = None
    for part in psutil.disk_partitions(all=True):
        if str(path).startswith(part.mountpoint) and (
            best is None or len(part.mountpoint) > len(best.mountpoint)
        ):
            best = part
    info: dict[str, Any] = {"path": str(path)}
    if best is not None:
        info.update(device=best.device, fstype=best.fstype, mountpoint=best.mountpoint)
        usage = psutil.disk_usage(best.mountpoint)
        info["size_gb"] = round(usage.total / 1e9, 1)
        dev = Path(best.device).name
        rot = Path(f"/sys/block/{re.sub(r'[0-9]+$', '', dev)}/queue/rotational")
        if rot.exists():
            info["rotational"] = rot.read_text().strip() == "1"
    return info


def machine_info(data_dir: Path) -> dict[str, Any]:
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 1
    return {
        "cpu": _cpu_model(),
        "cores_usable": usable,
        "cpus_online": os.cpu_count(),
        "ram_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "disk": _disk(data_dir),
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "load_avg_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def host_kind(info: dict[str, Any]) -> str:
    """A short slug like ``amd-epyc-2c`` for result file names."""
    words = re.sub(r"\(.*?\)|cpu|processor|[0-9]+-core", " ", info["cpu"].lower()).split()
    slug = "-".join(words[:2]) or "cpu"
    return re.sub(r"[^a-z0-9-]", "", slug) + f"-{info['cores_usable']}c"


def versions(python: str, packages: tuple[str, ...]) -> dict[str, str]:
    """Installed versions of ``packages`` as seen by interpreter ``python``."""
    code = (
        "import importlib.metadata as m, json, sys\n"
        "out = {}\n"
        "for name in sys.argv[1:]:\n"
        "    try: out[name] = m.version(name)\n"
        "    except m.PackageNotFoundError: pass\n"
        "print(json.dumps(out))\n"
    )
    try:
        done = subprocess.run(
            [python, "-c", code, *packages], capture_output=True, text=True, timeout=60
        )
        import json

        return json.loads(done.stdout)
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return {}


def git_revision(repo: Path) -> str:
    try:
        return subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except OSError:
        return "unknown"
