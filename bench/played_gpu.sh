#!/usr/bin/env bash
# bench/gpu.sh's steps on tiny sizes (SMOKE=1), on a CPU made to look like the lent GPU machine: `python3` only
# (no `python`), no `bc`, a PATH of a few plain tools, and dvc, mlflow, mlxtend, pydantic, umap-learn and
# pynndescent importable only from a carried site folder (tests/played_machine/sitecustomize.py), as the
# wheelhouse puts them there. What fails here would fail there, before a GPU minute is spent.
#   bash bench/played_gpu.sh        (tests/test_played_gpu.py runs it in `make test`)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
python=$(python3 -c "import sys; print(sys.executable)")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/bin" "$work/site" "$work/home" "$work/idx"

# The carried packages: what the wheelhouse holds (umap-learn, pynndescent, mlxtend), copied from this venv.
"$python" - "$work/site" <<'PY'
import importlib, shutil, sys
from pathlib import Path
for name in ("umap", "pynndescent", "mlxtend"):
    folder = Path(importlib.import_module(name).__file__).parent
    shutil.copytree(folder, Path(sys.argv[1]) / name)
PY
# A small IDX folder for the speed bench (1,200 of mnist5k's digits).
"$python" - "$work/idx" <<'PY'
import sys
from pathlib import Path
from unsupervised_mnist.data import sources
from unsupervised_mnist.data.idx import encode_idx
images, labels = sources.read_mnist5k(sources.mnist5k_csv())["train"]
for name, array in zip(sources.idx_names("train"), (images[::4][:1200], labels[::4][:1200])):
    (Path(sys.argv[1]) / name).write_bytes(encode_idx(array))
PY
printf '#!/bin/sh\nexec "%s" "$@"\n' "$python" > "$work/bin/python3"  # this venv's, by another name
chmod +x "$work/bin/python3"
for tool in bash env dirname mktemp rm date cat sed cp ls mkdir tail head; do
  ln -s "$(command -v "$tool")" "$work/bin/$tool"
done
# (The copies keep numba's compiled UMAP functions beside them, as `make install` left them: no 30 s recompile.)
env -i HOME="$work/home" PATH="$work/bin" PYTHONPATH="$repo/tests/played_machine" PLAYED_SITE="$work/site" \
  GPU_SITE="$work/site" SMOKE=1 ${OMP_NUM_THREADS:+OMP_NUM_THREADS=$OMP_NUM_THREADS} \
  bash "$repo/bench/gpu.sh" "$work/idx"
