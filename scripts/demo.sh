#!/usr/bin/env bash
# Installs everything, then runs the main job end to end on data it generates itself:
# make a realistic photo dataset, pack it, train-style iterate it with augmentation,
# and print throughput. Idempotent (reuses .demo/ when it is already there).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh demo
python3 -m pixpack.demo --workdir .demo "$@"
