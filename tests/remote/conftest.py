"""Servers for the remote tests, started on localhost by the tests themselves.

- ``http_server``: a plain HTTP server over a directory that answers ``Range`` requests
  (Python's ``SimpleHTTPRequestHandler`` does not), with faults injected per test:
  500s, a connection that dies half-way through a body, slow answers.
- ``s3_server``: moto's standalone S3-compatible server (``ThreadedMotoServer``), read
  through the real s3fs client.
"""

from __future__ import annotations

import http.server
import os
import re
import shutil
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import pixpack


@pytest.fixture(scope="session")
def remote_packs(photo_folder, tmp_path_factory) -> tuple[Path, Path]:
    """(one pack file, the same samples in 5-sample shards), in a directory to serve."""
    root = tmp_path_factory.mktemp("remote_packs")
    one = root / "one.pixpack"
    pixpack.pack(photo_folder, one, quiet=True, workers=2)
    pixpack.pack(photo_folder, root / "sharded", quiet=True, workers=2, shard_size="5samples")
    return one, root / "sharded"


class Faults:
    """What the server does wrong, per request (thread-safe counters)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with getattr(self, "lock", threading.Lock()):
            self.fail_500 = 0  # the next N requests answer 500
            self.cut = 0  # the next N bodies of more than 1 kB stop half-way
            self.slow_s = 0.0  # every request waits this long first
            self.slow_paths = ""  # ... only requests whose path contains this
            self.requests: list[tuple[str, str]] = []  # (path, Range header)

    def take(self, name: str) -> bool:
        with self.lock:
            left = getattr(self, name)
            if left > 0:
                setattr(self, name, left - 1)
                return True
            return False


def _handler(root: Path, faults: Faults) -> type[http.server.BaseHTTPRequestHandler]:
    class RangeHandler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:  # quiet
            pass

        def _file(self) -> Path | None:
            path = (root / self.path.split("?", 1)[0].lstrip("/")).resolve()
            if root not in path.parents and path != root:
                return None
            return path if path.is_file() else None

        def _answer(self, head_only: bool) -> None:
            faults.requests.append((self.path, self.headers.get("Range", "")))
            if faults.slow_s and faults.slow_paths in self.path:
                time.sleep(faults.slow_s)
            if faults.take("fail_500"):
                self.send_response(500)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            path = self._file()
            if path is None:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            size = path.stat().st_size
            start, stop = 0, size
            match = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
            if match:
                start = int(match.group(1))
                stop = min(size, int(match.group(2)) + 1) if match.group(2) else size
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{stop - 1}/{size}")
            else:
                self.send_response(200)
            self.send_header("Content-Length", str(stop - start))
            self.send_header("Accept-Ranges", "bytes")
            self.end_headers()
            if head_only:
                return
            with open(path, "rb") as f:
                f.seek(start)
                body = f.read(stop - start)
            if len(body) > 1024 and faults.take("cut"):
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            self.wfile.write(body)

        def do_GET(self) -> None:
            self._answer(False)

        def do_HEAD(self) -> None:
            self._answer(True)

    return RangeHandler


@pytest.fixture(scope="session")
def http_root(remote_packs) -> Path:
    return remote_packs[0].parent


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that gave up (timeouts) close their end: expected here


@pytest.fixture(scope="session")
def http_server(http_root):
    """``(base URL, Faults)`` of a Range-capable HTTP server over ``http_root``."""
    faults = Faults()
    server = _Server(("127.0.0.1", 0), _handler(http_root, faults))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", faults
    server.shutdown()
    server.server_close()


@pytest.fixture
def faults(http_server):
    _, f = http_server
    f.reset()
    yield f
    f.reset()


@pytest.fixture(scope="session")
def s3_server(remote_packs):
    """``(endpoint URL, bucket)``: moto's S3 server holding ``sharded/`` and ``one.pixpack``."""
    pytest.importorskip("s3fs")
    server_mod = pytest.importorskip("moto.server")
    boto3 = pytest.importorskip("boto3")
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ.setdefault(key, "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    client.create_bucket(Bucket="data")
    one, sharded = remote_packs
    client.upload_file(str(one), "data", "one.pixpack")
    for f in sorted(sharded.iterdir()):
        client.upload_file(str(f), "data", f"sharded/{f.name}")
    yield endpoint, "data"
    server.stop()


@pytest.fixture
def s3_options(s3_server) -> dict[str, Any]:
    endpoint, _ = s3_server
    return {"client_kwargs": {"endpoint_url": endpoint}, "key": "testing",
            "secret": "testing"}  # fmt: skip


@pytest.fixture
def fresh_cache(tmp_path) -> Path:
    path = tmp_path / "cache"
    yield path
    shutil.rmtree(path, ignore_errors=True)
