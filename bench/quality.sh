#!/usr/bin/env bash
# Model quality on full-size data: the pipeline's own stages, in dvc.yaml's order, with params.yaml plus
# the full-size profile (profiles/full-size.yaml), run by plain `python pipeline/<stage>.py` so that it
# needs neither dvc nor mlflow (the GPU machine has neither). Writes the summary table and the wall time
# of each stage. On a GPU when there is one (train.device: auto), else on the CPU.
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

python - "$repo" "$work/params.yaml" "$data" "$@" <<'PY'
import sys, yaml
repo, dst, data, *overrides = sys.argv[1:]
params = yaml.safe_load(open(f"{repo}/params.yaml"))
profile = yaml.safe_load(open(f"{repo}/profiles/full-size.yaml"))
pairs = list(profile.items()) + [item.removeprefix("-S").strip().split("=", 1) for item in overrides if item != "-S"]
if data:
    pairs += [("data.source", "idx"), ("data.path", data)]
for key, value in pairs:
    *parents, leaf = key.split(".")
    node = params
    for part in parents:
        node = node[part]
    node[leaf] = yaml.safe_load(value) if isinstance(value, str) and key != "data.path" else value
yaml.safe_dump(params, open(dst, "w"), sort_keys=False)
PY

cd "$work"
timings=()
total_start=$(date +%s.%N)
for stage in check data prepare "train ae" "train vae" "train gan" classifier \
             "evaluate ae" "evaluate vae" "evaluate gan" "evaluate pca" "evaluate pixels" report; do
  start=$(date +%s.%N)
  read -r script arg <<<"$stage"
  python "$repo/pipeline/$script.py" $arg > "$work/$script${arg:+-$arg}.log" 2>&1 || { cat "$work/$script${arg:+-$arg}.log"; exit 1; }
  seconds=$(python -c "print(f'{$(date +%s.%N) - $start:.1f}')")
  timings+=("| $stage | $seconds |")
  echo "   $stage: $seconds s"
done
wall=$(python -c "print(f'{$(date +%s.%N) - $total_start:.0f}')")
device=$(python -c "import torch; print(torch.cuda.get_device_name() if torch.cuda.is_available() else 'CPU')")

{
  echo "# Quality benchmark: $label"
  echo
  echo "\`bash bench/quality.sh ${data:+$data }$*\` on $device ($(nproc) cores), $(date -u +%Y-%m-%d), wall time $wall s."
  echo
  echo "Test split (reports/summary.csv of the run):"
  echo
  python - <<'PY'
import csv
rows = list(csv.reader(open("reports/summary.csv")))
print("| " + " | ".join(rows[0]) + " |")
print("|---" * len(rows[0]) + "|")
for row in rows[1:]:
    print("| " + " | ".join(row) + " |")
PY
  echo
  echo "| stage | seconds |"
  echo "|---|---|"
  printf '%s\n' "${timings[@]}"
  echo
  echo "Validation split (selection):"
  echo
  python - <<'PY'
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
