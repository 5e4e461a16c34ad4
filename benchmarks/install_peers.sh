#!/usr/bin/env bash
# Install the peer loaders (FFCV, NVIDIA DALI) into their own virtual environments
# under benchmarks/envs/. Idempotent: a peer whose venv already imports is skipped.
#
# Both venvs use --system-site-packages so they reuse the system torch/torchvision
# (torch is ~5 GB; the pip constraint file caps it at the locally available 2.14.1).
# Each peer's outcome (ok / failed + reason) is written to benchmarks/envs/<peer>.status,
# which the runner reads to report plainly when a peer could not be run.
set -u
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ENVS="$HERE/envs"
mkdir -p "$ENVS"
PY="${PYTHON:-python3}"

status() {  # status <peer> <ok|failed> <message>
  printf '%s\t%s\n' "$2" "$3" > "$ENVS/$1.status"
  echo "[$1] $2: $3"
}

make_venv() {  # make_venv <dir>
  [ -x "$1/bin/python" ] || "$PY" -m venv --system-site-packages "$1"
}

install_ffcv() {
  local env="$ENVS/ffcv"
  if [ -x "$env/bin/python" ] && "$env/bin/python" -c "import ffcv, ffcv.loader" 2>/dev/null; then
    status ffcv ok "ffcv $("$env/bin/python" -c 'import importlib.metadata as m; print(m.version("ffcv"))') already installed"
    return
  fi
  # FFCV's setup.py finds opencv4 and libturbojpeg through pkg-config and compiles libffcv.cpp.
  if ! pkg-config --exists opencv4 libturbojpeg 2>/dev/null; then
    if command -v apt-get >/dev/null; then
      (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
         pkg-config libturbojpeg0-dev libopencv-dev) > "$ENVS/ffcv-apt.log" 2>&1 \
        || { status ffcv failed "apt-get install of pkg-config/libturbojpeg0-dev/libopencv-dev failed (see envs/ffcv-apt.log)"; return; }
    else
      status ffcv failed "pkg-config cannot find opencv4/libturbojpeg and apt-get is unavailable"; return
    fi
  fi
  make_venv "$env"
  # numba must support the numpy it runs with; torch comes from system site-packages.
  if ! "$env/bin/pip" install -q "torch==2.14.1" "ffcv==1.0.2" numba > "$ENVS/ffcv-pip.log" 2>&1; then
    status ffcv failed "pip install ffcv==1.0.2 failed: $(grep -iE 'error' "$ENVS/ffcv-pip.log" | head -3 | tr '\n' ' ')"
    return
  fi
  if "$env/bin/python" -c "import ffcv, ffcv.loader, ffcv.writer" > "$ENVS/ffcv-import.log" 2>&1; then
    status ffcv ok "ffcv $("$env/bin/python" -c 'import importlib.metadata as m; print(m.version("ffcv"))') installed"
  else
    status ffcv failed "ffcv installed but does not import: $(tail -1 "$ENVS/ffcv-import.log")"
  fi
}

install_dali() {
  local env="$ENVS/dali"
  if [ -x "$env/bin/python" ] && "$env/bin/python" -c "import nvidia.dali" 2>/dev/null; then
    status dali ok "nvidia-dali $("$env/bin/python" -c 'import nvidia.dali as d; print(d.__version__)') already installed"
    return
  fi
  make_venv "$env"
  if ! "$env/bin/pip" install -q "nvidia-dali-cuda130==2.4.0" > "$ENVS/dali-pip.log" 2>&1; then
    status dali failed "pip install nvidia-dali-cuda130==2.4.0 failed: $(grep -iE 'error' "$ENVS/dali-pip.log" | head -3 | tr '\n' ' ')"
    return
  fi
  if "$env/bin/python" -c "import nvidia.dali" > "$ENVS/dali-import.log" 2>&1; then
    status dali ok "nvidia-dali $("$env/bin/python" -c 'import nvidia.dali as d; print(d.__version__)') installed"
  else
    status dali failed "nvidia-dali installed but does not import: $(tail -1 "$ENVS/dali-import.log")"
  fi
}

peers="${*:-ffcv dali}"
for p in $peers; do
  case "$p" in
    ffcv) install_ffcv ;;
    dali) install_dali ;;
    *) echo "unknown peer: $p (choose ffcv, dali)" >&2; exit 2 ;;
  esac
done
