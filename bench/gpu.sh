#!/usr/bin/env bash
# The GPU check, as one script for a machine lent by the `device` tool (Python 3.12 + torch, but no
# dvc, mlflow or mlxtend, and no network): the speed bench on full-size Fashion-MNIST, then the
# pipeline's own stages in dvc.yaml's order on data.source=idx over the same files, then train@ae
# again under torchrun (one process per GPU). Under 6 minutes.
#
# Here, once:   mkdir -p .gpu-data && cp /usr/share/datasets/fashion-mnist/* .gpu-data/
#               (.gpu-data/ is gitignored; name it in the device tool's `carry`)
# There:        bash bench/gpu.sh [IDX_FOLDER]        (EPOCHS=1 bash bench/gpu.sh for a CPU smoke test)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
data=$(cd "${1:-$repo/.gpu-data}" && pwd)
export PYTHONPATH="$repo/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 UMNIST_MLFLOW=off
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

python - <<'PY'
import torch
print(f"torch {torch.__version__}, cuda {torch.cuda.is_available()}",
      torch.cuda.get_device_name() if torch.cuda.is_available() else "")
PY

echo "== bench/train_speed.py on $data"
(cd "$repo" && python bench/train_speed.py --data "$data")

echo "== pipeline stages on data.source=idx ($data)"
python - "$repo/params.yaml" "$work/params.yaml" "$data" "${EPOCHS:-}" <<'PY'
import sys, yaml
src, dst, data, epochs = sys.argv[1:]
params = yaml.safe_load(open(src))
params["data"].update(source="idx", path=data)
params["train"]["batch_size"] = 512  # a GPU wants bigger batches; the lr stays as in params.yaml
for model in ("ae", "vae", "gan"):
    if epochs:
        params[model]["epochs"] = int(epochs)
yaml.safe_dump(params, open(dst, "w"), sort_keys=False)
PY
cd "$work"
for stage in "check" "data" "prepare" "train ae" "train vae" "train gan"; do
  start=$(date +%s.%N)
  python "$repo/pipeline/${stage%% *}.py" ${stage#* } | tail -n 1
  printf '   %-10s %6.1f s\n' "$stage" "$(echo "$(date +%s.%N) - $start" | bc)"
done
python - <<'PY'
import json, pathlib
for path in sorted(pathlib.Path("reports/timings").glob("train@*.json")):
    print(path.stem, json.loads(path.read_text()))
PY

echo "== train ae: one process vs the torchrun path (one process per GPU; DDP from two GPUs up)"
gpus=$(python -c "import torch; print(max(torch.cuda.device_count(), 1))")
cp "reports/timings/train@ae.json" "$work/ae-one-process.json"
python -m torch.distributed.run --standalone --nproc_per_node "$gpus" "$repo/pipeline/train.py" ae | tail -n 1
python - "$work/ae-one-process.json" "reports/timings/train@ae.json" <<'PY'
import json, sys
one, run = (json.load(open(p)) for p in sys.argv[1:])
for label, t in (("one process", one), (f"torchrun x{run['processes']}", run)):
    print(f"   {label:<14} {t['train_s'] / t['epochs_run']:.2f} s/epoch  {t['images_per_s']:.0f} images/s")
PY
