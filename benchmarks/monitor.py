"""Peak memory of a process tree (the benchmark process plus its workers), sampled from /proc.

Per-process RSS and RssAnon are what ``top`` and most memory monitors show; summed
over forked DataLoader workers they count copy-on-write pages shared with the parent
once per process. PSS (proportional set size) splits each shared page between the
processes mapping it, so the PSS sum is the memory the tree really uses. We report
all of them: the sums are what users see (and what trips naive alarms), PSS is the truth.
"""

from __future__ import annotations

import threading

import psutil

__all__ = ["TreeMonitor"]


def _status_kb(pid: int) -> tuple[int, int]:
    rss = anon = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("RssAnon:"):
                anon = int(line.split()[1])
    return rss, anon


def _pss_kb(pid: int) -> tuple[int, int]:
    pss = pss_anon = 0
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Pss:"):
                pss = int(line.split()[1])
            elif line.startswith("Pss_Anon:"):
                pss_anon = int(line.split()[1])
    return pss, pss_anon


class TreeMonitor(threading.Thread):
    """Samples the tree rooted at ``pid`` every ``interval`` s until :meth:`stop`.

    Peaks are in bytes: ``rss``, ``anon`` (RssAnon), ``pss``, ``pss_anon`` (each the
    peak of the per-sample sum over the tree) and ``processes`` (most processes seen).
    PSS is read every ``pss_every``-th sample because smaps_rollup walks page tables.
    """

    def __init__(self, pid: int, interval: float = 0.1, pss_every: int = 3) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.interval = interval
        self.pss_every = pss_every
        self.peaks = {"rss": 0, "anon": 0, "pss": 0, "pss_anon": 0, "processes": 0}
        self._stop_event = threading.Event()

    def stop(self) -> dict[str, int]:
        self._stop_event.set()
        self.join(timeout=5)
        return dict(self.peaks)

    def run(self) -> None:
        try:
            root = psutil.Process(self.pid)
        except psutil.NoSuchProcess:
            return
        tick = 0
        while not self._stop_event.is_set():
            try:
                procs = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                return
            sums = {"rss": 0, "anon": 0, "pss": 0, "pss_anon": 0}
            with_pss = tick % self.pss_every == 0
            for p in procs:
                try:
                    rss, anon = _status_kb(p.pid)
                    sums["rss"] += rss
                    sums["anon"] += anon
                    if with_pss:
                        pss, pss_anon = _pss_kb(p.pid)
                        sums["pss"] += pss
                        sums["pss_anon"] += pss_anon
                except (OSError, ValueError):  # the process ended between listing and reading
                    continue
            for key, kb in sums.items():
                self.peaks[key] = max(self.peaks[key], kb * 1024)
            self.peaks["processes"] = max(self.peaks["processes"], len(procs))
            tick += 1
            self._stop_event.wait(self.interval)
