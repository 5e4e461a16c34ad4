#!/usr/bin/env bash
# Installs pixpack (editable, with its native extensions) and the given extras.
# Idempotent: a second run only re-checks. Needs Python >= 3.10, pip and gcc.
set -euo pipefail
export PIP_ROOT_USER_ACTION=ignore
cd "$(dirname "$0")/.."
extras="${1:-test}"
python3 -m pip install --disable-pip-version-check -q --upgrade "pip>=23" setuptools wheel
# torch first, pinned to the release this project is tested with (taken from local disk
# where the machine provides it, from PyPI otherwise).
python3 -m pip install --disable-pip-version-check -q "torch==2.14.1" "torchvision==0.29.1"
python3 -m pip install --disable-pip-version-check -q -e ".[${extras}]"
python3 -c "import pixpack, pixpack.read.jpeg as j, pixpack.loader.convert as c, pixpack.ops.kernels as k, pixpack.storage.local as s, pixpack.read.lossless as ll; print('pixpack', pixpack.__version__, '| native JPEG decoder:', j.native_available(), '| native store:', c.native_store_available(), '| native resize:', k.native_resize_available(), '| native read-ahead:', s._native_will_need is not None, '| native lossless:', ll._decode_rows is not None)"
