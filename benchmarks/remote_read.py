"""Reading the same JPEGs from a local S3 server (moto) with a cache smaller than the data.

Issue 18: loader img/s of a sharded pixpack pack read from S3 through its bounded shard
cache, against the same pack on local disk, and against MosaicML Streaming (MDS) and
LitData (``optimize`` chunks) streaming the same JPEG bytes from the same server.

One ``moto_server`` process serves every row (started once, in-memory backend), so its
CPU competes with the readers on the machine's cores; its CPU seconds and the bytes it
sends (response bodies, counted by a WSGI wrapper around moto's app) are recorded per row. Each
row runs in a fresh process (``worker.py remote_readers``, the peers under their venv
python), under ``flock /tmp/pixpack-bench.lock``, after its cache directory is emptied
and the page cache dropped (root). The cache limit is a third of the pack's bytes for
every reader that has one. Rows run interleaved for ``--rounds`` rounds; each reads
``--epochs`` epochs (epoch 1: empty cache; epoch 2: what the cache kept).

    python benchmarks/remote_read.py --rounds 3
"""

from __future__ import annotations

import argparse
import datetime as dt
import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from machine import git_revision, host_kind, machine_info, versions  # noqa: E402
from result_files import write_run  # noqa: E402

DATA = HERE / "data"
WORK = DATA / "remote"
ENVS = HERE / "envs"
LOCK = "/tmp/pixpack-bench.lock"
BUCKET = "bench"
PORT = 5077
PEER_PY = {"streaming": ENVS / "streaming/bin/python", "litdata": ENVS / "litdata/bin/python"}

# -- the data: one pack, its JPEG bytes as files, MDS and LitData written from those ---------
_MDS = """import sys, pathlib
from PIL import Image
from streaming import MDSWriter
src, out, limit = pathlib.Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
with MDSWriter(out=out, columns={"image": "jpeg", "label": "int"}, compression=None,
               size_limit=limit) as w:
    for p in sorted(src.glob("*/*.jpg")):
        with Image.open(p) as im:
            w.write({"image": im, "label": int(p.parent.name)})
"""
_LIT = """import sys, pathlib
from PIL import Image
import litdata
def fn(p):
    return {"image": Image.open(p), "label": int(pathlib.Path(p).parent.name)}
if __name__ == "__main__":
    src = pathlib.Path(sys.argv[1])
    litdata.optimize(fn=fn, inputs=[str(p) for p in sorted(src.glob("*/*.jpg"))],
                     output_dir=sys.argv[2], chunk_size=int(sys.argv[3]), num_workers=1,
                     verbose=False)
"""


def prepare(src: Path, shard: int) -> dict[str, Any]:
    import pixpack

    pack_dir = WORK / "pack"
    if not (pack_dir / "shards.json").exists():
        pixpack.pack(src, pack_dir, mode="jpeg", max_side=256, shard_size=f"{shard}samples")
    jpegs = WORK / "jpegs"
    if not jpegs.exists():
        pack = pixpack.open(pack_dir)
        tmp = WORK / "jpegs.tmp"
        for i, label in enumerate(pack.targets):
            (tmp / f"{int(label):02d}").mkdir(parents=True, exist_ok=True)
            (tmp / f"{int(label):02d}" / f"{i:06d}.jpg").write_bytes(pack.sample_bytes(i))
        tmp.rename(jpegs)
    nbytes = _dir_bytes(pack_dir)
    per_shard = int(nbytes / len(list(pack_dir.glob("*.pixpack"))))
    for name, code, arg in (("mds", _MDS, per_shard), ("litdata", _LIT, shard)):
        if not (WORK / name / "index.json").exists():
            shutil.rmtree(WORK / name, ignore_errors=True)
            env = {**os.environ, "DATA_OPTIMIZER_CACHE_FOLDER": str(WORK / "lit-scratch")}
            script = WORK / f"_write_{name}.py"  # a file: optimize's spawned workers import it
            script.write_text(code)
            python = str(PEER_PY["streaming" if name == "mds" else "litdata"])
            subprocess.run([python, str(script), str(jpegs), str(WORK / name), str(arg)],
                           check=True, env=env)  # fmt: skip
    suffixes = (".pixpack", ".mds", ".bin")
    shards = {k: sum(p.suffix in suffixes for p in (WORK / k).iterdir())
              for k in ("pack", "mds", "litdata")}  # fmt: skip
    return {k: _dir_bytes(WORK / k) for k in ("pack", "jpegs", "mds", "litdata")} | {
        "shards": shards
    }


def _dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


# -- the server -------------------------------------------------------------------------------
class Server:
    def __init__(self, log: Path) -> None:
        self.log = log
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--serve"], stdout=open(log, "wb"), stderr=subprocess.STDOUT
        )
        self.url = f"http://127.0.0.1:{PORT}"
        import urllib.request

        for _ in range(100):
            try:
                urllib.request.urlopen(self.url + "/__sent", timeout=1)
                return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("moto_server did not start")

    def counters(self) -> dict[str, float]:
        tick = os.sysconf("SC_CLK_TCK")
        stat = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        import urllib.request

        with urllib.request.urlopen(self.url + "/__sent", timeout=10) as r:
            sent = json.loads(r.read())
        return {"cpu_s": (int(stat[11]) + int(stat[12])) / tick, **sent}

    def upload(self) -> None:
        import boto3

        s3 = boto3.client("s3", endpoint_url=self.url, aws_access_key_id="testing",
                          aws_secret_access_key="testing", region_name="us-east-1")  # fmt: skip
        s3.create_bucket(Bucket=BUCKET)
        for name in ("pack", "mds", "litdata"):
            for f in sorted((WORK / name).rglob("*")):
                if f.is_file():
                    s3.upload_file(str(f), BUCKET, f"{name}/{f.relative_to(WORK / name)}")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


# -- the rows ---------------------------------------------------------------------------------
def configs(url: str, limit: int, epochs: int) -> list[dict[str, Any]]:
    base = {"epochs": epochs, "workers": 2, "cache_limit": limit}
    s3 = {"endpoint": url, **base}
    return [
        {"name": "pixpack-local", "func": "pixpack", "source": str(WORK / "pack"), **base,
         "cache_limit": None},
        {"name": "pixpack-s3", "func": "pixpack", "source": f"s3://{BUCKET}/pack", **s3},
        {"name": "pixpack-s3-window2", "func": "pixpack", "source": f"s3://{BUCKET}/pack",
         "shard_window": 2, **s3},
        {"name": "streaming-s3", "func": "streaming", "source": f"s3://{BUCKET}/mds", **s3},
        {"name": "streaming-s3-block250", "func": "streaming", "source": f"s3://{BUCKET}/mds",
         "shuffle_block_size": 250, **s3},
        {"name": "litdata-s3", "func": "litdata", "source": f"s3://{BUCKET}/litdata", **s3},
    ]  # fmt: skip


def run_one(cfg: dict[str, Any], server: Server, timeout: float) -> dict[str, Any]:
    cache = WORK / "cache" / cfg["name"]
    cfg = {**cfg, "cache_dir": str(cache)}
    python = str(PEER_PY.get(cfg["func"], sys.executable))
    env = {**os.environ, "PYTHONPATH": str(HERE.parent / "src"), "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
           "S3_ENDPOINT_URL": server.url, "AWS_ENDPOINT_URL": server.url,
           "AWS_ALLOW_HTTP": "true"}  # fmt: skip
    with open(LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # what `flock /tmp/pixpack-bench.lock` takes
        shutil.rmtree(cache, ignore_errors=True)
        cache.mkdir(parents=True)
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3")
        with tempfile.TemporaryDirectory() as tmp:
            cfg_path, out_path = Path(tmp) / "cfg.json", Path(tmp) / "out.json"
            cfg_path.write_text(json.dumps(cfg))
            before, t0 = server.counters(), time.perf_counter()
            cmd = [python, str(HERE / "worker.py"), "remote_readers", cfg["func"]]
            proc = subprocess.Popen([*cmd, str(cfg_path), str(out_path)], env=env)
            peak, peak_files, stop = [0], {}, threading.Event()

            def watch() -> None:
                while not stop.wait(0.05):
                    try:
                        files = {str(f.relative_to(cache)): f.stat().st_size
                                 for f in cache.rglob("*") if f.is_file()}  # fmt: skip
                    except OSError:  # a file went away mid-walk
                        continue
                    if sum(files.values()) > peak[0]:
                        peak[0] = sum(files.values())
                        peak_files.clear()
                        peak_files.update(files)

            watcher = threading.Thread(target=watch, daemon=True)
            watcher.start()
            try:
                code = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = proc.wait()
            stop.set()
            watcher.join()
            after = server.counters()
            out = json.loads(out_path.read_text()) if out_path.exists() else {}
    out.setdefault("status", "failed" if code else "no result")
    out.update(exit_code=code, wall_s=time.perf_counter() - t0, peak_cache_bytes=peak[0],
               server_cpu_s=after["cpu_s"] - before["cpu_s"],
               server_sent_bytes=after["bytes"] - before["bytes"],
               server_gets=after["gets"] - before["gets"], peak_cache_files=peak_files)  # fmt: skip
    return out


def serve() -> None:
    """moto's server (as ``moto_server``: werkzeug, threaded, in memory) behind a WSGI
    wrapper counting the bytes of every response body and the GETs; ``/__sent`` reads them."""
    from moto.server import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import run_simple

    app = DomainDispatcherApplication(create_backend_app)
    count, lock = {"bytes": 0, "gets": 0, "requests": 0}, threading.Lock()

    def counted(environ: dict, start_response: Any) -> list[bytes]:
        if environ["PATH_INFO"] == "/__sent":
            start_response("200 OK", [("Content-Type", "application/json")])
            with lock:
                return [json.dumps(count).encode()]
        body = app(environ, start_response)
        try:
            chunks = list(body)
        finally:
            getattr(body, "close", lambda: None)()
        with lock:
            count["bytes"] += sum(len(c) for c in chunks)
            count["requests"] += 1
            count["gets"] += environ["REQUEST_METHOD"] == "GET"
        return chunks

    run_simple("127.0.0.1", PORT, counted, threaded=True)


def main() -> int:
    if sys.argv[1:] == ["--serve"]:
        serve()
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--shard", type=int, default=125, help="samples per shard / chunk")
    parser.add_argument("--only", default="", help="regex of row names")
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--run-name", default=None)
    args = parser.parse_args()
    import re

    sizes = prepare(DATA / "photos-2000", args.shard)
    limit = sizes["pack"] // 3
    server = Server(WORK / "moto.log")
    try:
        server.upload()
        cfgs = [
            c for c in configs(server.url, limit, args.epochs) if re.search(args.only, c["name"])
        ]
        rounds = []
        for r in range(args.rounds):
            records = {}
            for cfg in cfgs:
                out = records[cfg["name"]] = run_one(cfg, server, args.timeout)
                res = out.get("result") or {}
                pairs = zip(res.get("epoch_images", []), res.get("epoch_s", []), strict=True)
                rates = " ".join(f"{n / s:6.0f}" for n, s in pairs)
                print(f"round {r + 1} {cfg['name']:20s} {out['status']:8s} "
                      f"img/s {rates}  setup {res.get('setup_s', 0):.1f} s  "
                      f"sent {out['server_sent_bytes'] / 1e6:6.1f} MB  peak cache "
                      f"{out['peak_cache_bytes'] / 1e6:5.1f} MB / {limit / 1e6:.1f}  server "
                      f"{out['server_cpu_s']:.1f} cpu-s  {out.get('error', '')}",
                      flush=True)  # fmt: skip
            rounds.append(records)
    finally:
        server.stop()
    write_results(args, sizes, limit, cfgs, rounds)
    return 0


def write_results(args: Any, sizes: dict, limit: int, cfgs: list, rounds: list) -> None:
    from report_remote import render, summarize

    info = machine_info(DATA)
    name = args.run_name or f"{dt.date.today()}-{host_kind(info)}-remote"
    vers = versions(sys.executable, ("pixpack", "torch", "torchvision", "moto", "s3fs", "fsspec",
                                     "aiobotocore", "boto3", "numpy", "pillow"))  # fmt: skip
    for peer, dist in (("streaming", "mosaicml-streaming"), ("litdata", "litdata")):
        vers.update(versions(str(PEER_PY[peer]), (dist, "boto3", "obstore")) | {})
    vers["litdata-env boto3"] = versions(str(PEER_PY["litdata"]), ("boto3",)).get("boto3", "")
    doc = {
        "machine": info, "versions": vers, "git": git_revision(HERE.parent),
        "command": "python benchmarks/remote_read.py " + " ".join(sys.argv[1:]),
        "epochs": args.epochs, "samples_per_shard": args.shard, "sizes": sizes,
        "cache_limit": limit, "configs": cfgs, "rounds": rounds,
    }  # fmt: skip
    doc["summary"] = summarize(doc)
    write_run(name, doc, render(doc))


if __name__ == "__main__":
    sys.exit(main())
