#!/usr/bin/env bash
# Install the peer loaders (FFCV, NVIDIA DALI, WebDataset, Hugging Face datasets,
# MosaicML Streaming, LitData) into their own virtual environments under benchmarks/envs/.
# Idempotent: a peer whose venv already imports is skipped.
#
#   bash benchmarks/install_peers.sh                      # all peers
#   bash benchmarks/install_peers.sh webdataset litdata   # some of them
#
# All venvs use --system-site-packages so they reuse the system torch/torchvision
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

# The pure-Python peers. Each venv sees the system site-packages, so it must never pull a
# torch, torchvision or numpy of its own (that would shadow the system ones the other rows
# use and make the comparison unfair): a pip dry run checks the plan before installing.
guard_plan() {  # guard_plan <peer> <env> <pip args...>: fail if pip would replace torch/numpy
  local peer="$1" env="$2"; shift 2
  local report="$ENVS/$peer-plan.json"
  if ! "$env/bin/pip" install -q --dry-run --report "$report" "$@" > "$ENVS/$peer-pip.log" 2>&1; then
    status "$peer" failed "pip cannot resolve $*: $(grep -iE 'error' "$ENVS/$peer-pip.log" | head -3 | tr '\n' ' ')"
    return 1
  fi
  local clash
  clash="$("$env/bin/python" - "$report" <<'PY'
import json, sys
plan = json.load(open(sys.argv[1]))["install"]
print(" ".join(f"{i['metadata']['name']}=={i['metadata']['version']}" for i in plan
               if i["metadata"]["name"].lower() in {"torch", "torchvision", "numpy"}))
PY
)"
  if [ -n "$clash" ]; then
    status "$peer" failed "pip would replace the system packages ($clash); refusing"
    return 1
  fi
}

install_pure() {  # install_pure <peer> <dist> <import> -- <pip args...> [-- <pip --no-deps args...>]
  local peer="$1" dist="$2" mod="$3"; shift 4
  local env="$ENVS/$peer" args=() nodeps=()
  while [ $# -gt 0 ] && [ "$1" != "--" ]; do args+=("$1"); shift; done
  [ $# -gt 0 ] && { shift; nodeps=("$@"); }
  local version="import importlib.metadata as m; print(m.version('$dist'))"
  if [ -x "$env/bin/python" ] && "$env/bin/python" -c "import $mod" 2>/dev/null; then
    status "$peer" ok "$dist $("$env/bin/python" -c "$version") already installed"
    return
  fi
  make_venv "$env"
  guard_plan "$peer" "$env" "${args[@]}" || return
  if ! "$env/bin/pip" install -q "${args[@]}" >> "$ENVS/$peer-pip.log" 2>&1; then
    status "$peer" failed "pip install ${args[*]} failed: $(grep -iE 'error' "$ENVS/$peer-pip.log" | head -3 | tr '\n' ' ')"
    return
  fi
  if [ ${#nodeps[@]} -gt 0 ] && ! "$env/bin/pip" install -q --no-deps "${nodeps[@]}" >> "$ENVS/$peer-pip.log" 2>&1; then
    status "$peer" failed "pip install --no-deps ${nodeps[*]} failed (see envs/$peer-pip.log)"
    return
  fi
  if "$env/bin/python" -c "import $mod" > "$ENVS/$peer-import.log" 2>&1; then
    status "$peer" ok "$dist $("$env/bin/python" -c "$version") installed"
  else
    status "$peer" failed "$dist installed but does not import: $(tail -1 "$ENVS/$peer-import.log")"
  fi
}

install_webdataset() {
  install_pure webdataset webdataset webdataset -- "webdataset==1.0.2"
}

install_datasets() {
  # datasets brings pyarrow, pandas, huggingface_hub into the venv only; Pillow (for the
  # Image feature) comes from the system.
  install_pure datasets datasets "datasets, PIL" -- "datasets==5.2.0"
}

install_streaming() {
  # mosaicml-streaming 0.13.0 declares numpy<2.2 and every cloud SDK (boto3, azure, gcs,
  # oci, paramiko). Installed with its declared numpy it would shadow the system numpy 2.4
  # that torch and every other row use, so the package itself goes in with --no-deps, next
  # to the dependencies `import streaming` really needs (transformers is imported by its
  # dataloader module; the compression codecs by its format code). Cloud SDKs are only
  # imported for remote paths, which the benchmark never uses.
  install_pure streaming mosaicml-streaming "streaming, streaming.base.format.mds" -- \
    "transformers>=4.21.3,<5" "xxhash>=3,<4" "zstd>=1.5.2.5,<2" "Brotli>=1.0.9" \
    "python-snappy>=0.6.1,<1" "catalogue>=2,<3" -- "mosaicml-streaming==0.13.0"
}

install_litdata() {
  install_pure litdata litdata "litdata" -- "litdata==0.2.76"
}

peers="${*:-ffcv dali webdataset datasets streaming litdata}"
for p in $peers; do
  case "$p" in
    ffcv) install_ffcv ;;
    dali) install_dali ;;
    webdataset) install_webdataset ;;
    datasets) install_datasets ;;
    streaming) install_streaming ;;
    litdata) install_litdata ;;
    *) echo "unknown peer: $p (choose ffcv, dali, webdataset, datasets, streaming, litdata)" >&2; exit 2 ;;
  esac
done
