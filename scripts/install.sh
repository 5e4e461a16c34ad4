#!/usr/bin/env bash
# Installs pixpack (editable, with its native extensions) and the given extras.
# Idempotent: a second run only re-checks. Needs Python >= 3.10, pip and gcc.
set -euo pipefail
export PIP_ROOT_USER_ACTION=ignore
cd "$(dirname "$0")/.."
extras="${1:-test}"
python3 -m pip install --disable-pip-version-check -q --upgrade "pip>=23" setuptools wheel
# torch first (pixpack's core does not need it; the tests, the demo and [torch] do),
# pinned to the release this project is tested with (taken from local disk where the
# machine provides it, from PyPI otherwise).
python3 -m pip install --disable-pip-version-check -q "torch==2.14.1" "torchvision==0.29.1"
python3 -m pip install --disable-pip-version-check -q -e ".[${extras}]"
# The banner: what was built, and which frameworks are installed (found, not imported:
# TensorFlow alone takes seconds to import).
python3 - <<'PY'
import pixpack, pixpack.read.jpeg as j, pixpack.loader.convert as c, pixpack.ops.kernels as k
import pixpack.storage.local as s, pixpack.read.lossless as ll
from pixpack.optional import FRAMEWORKS, installed
print('pixpack', pixpack.__version__, '| native JPEG decoder:', j.native_available(),
      '| native store:', c.native_store_available(), '| native resize:', k.native_resize_available(),
      '| native read-ahead:', s._native_will_need is not None,
      '| native lossless:', ll._decode_rows is not None)
print('frameworks:', ', '.join(f"{n} {installed(n) or 'not installed'}" for n in FRAMEWORKS))
PY
