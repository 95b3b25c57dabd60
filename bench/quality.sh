#!/usr/bin/env bash
# Model quality on full-size data: the pipeline's own stages (bench/run_pipeline.py: dvc.yaml's order, plain
# processes, so neither dvc nor mlflow is needed: the GPU machine has neither), with params.yaml plus the
# full-size profile (profiles/full-size.yaml). Writes the summary table and the wall time of each stage. On a
# GPU when there is one (train.device: auto), else on the CPU.
#
#   bash bench/quality.sh [IDX_FOLDER] [-S key=value ...]
#
# IDX_FOLDER: MNIST-format IDX files (train-* and t10k-*), e.g. full MNIST; without it, Fashion-MNIST
# from Debian's dataset-fashion-mnist (/usr/share/datasets/fashion-mnist). Results: bench/results/
# quality-<data>.md (the table, the params used, the timings); the work folder is removed at the end.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
data=""
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then data=$(cd "$1" && pwd); shift; fi
export PYTHONPATH="$repo/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 UMNIST_MLFLOW=off
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
label=${data:+idx-$(basename "$data")}
label=${label:-fashion-mnist}
out="$repo/bench/results/quality-$label.md"
mkdir -p "$repo/bench/results"

start=$(date +%s)
python3 "$repo/bench/run_pipeline.py" "$work" --profile "$repo/profiles/full-size.yaml" \
  ${data:+-S data.source=idx -S "data.path=$data"} "$@"
wall=$(( $(date +%s) - start ))
device=$(python3 -c "import torch; print(torch.cuda.get_device_name() if torch.cuda.is_available() else 'CPU')")

cd "$work"
{
  echo "# Quality benchmark: $label"
  echo
  echo "\`bash bench/quality.sh ${data:+$data }$*\` on $device ($(nproc) cores), $(date -u +%Y-%m-%d), wall time $wall s."
  echo
  echo "Test split (reports/summary.csv of the run):"
  echo
  python3 - <<'PY'
import csv, json
rows = list(csv.reader(open("reports/summary.csv")))
print("| " + " | ".join(rows[0]) + " |")
print("|---" * len(rows[0]) + "|")
for row in rows[1:]:
    print("| " + " | ".join(row) + " |")
print("\n| stage | seconds |\n|---|---|")
for stage, seconds in json.load(open("stage_seconds.json")).items():
    print(f"| {stage} | {seconds:.1f} |")
PY
  echo
  echo "Validation split (selection):"
  echo
  python3 - <<'PY'
import json, pathlib
keys = ("val/psnr_db", "val/kmeans_acc", "val/manifold_acc", "val/fid", "val/classifier_score", "val/iwae_nll")
print("| representation | " + " | ".join(keys) + " |")
print("|---" * (len(keys) + 1) + "|")
for path in sorted(pathlib.Path("reports/eval").glob("*.json")):
    m = json.loads(path.read_text())
    print(f"| {path.stem} | " + " | ".join(f"{m[k]:.4f}" if k in m else "" for k in keys) + " |")
PY
  echo
  echo "Params (params.yaml + profiles/full-size.yaml${*:+ + $*}):"
  echo
  echo '```yaml'
  cat params.yaml
  echo '```'
} > "$out"
echo "wrote $out (wall time $wall s)"
