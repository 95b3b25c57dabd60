#!/usr/bin/env bash
# Seed spread: the default params trained and evaluated for several seeds (bench/run_pipeline.py: the pipeline's
# own stages, no DVC or MLflow), then the mean and standard deviation of every headline metric over the seeds,
# written to bench/results/seeds.md. A difference between two runs smaller than about twice these deviations is
# not a result; the quality gates' min_improvement in params.yaml is set from them.
#
#   bash bench/seeds.sh [-S key=value ...]        (SEEDS="1 2 3" by default; KEEP=DIR keeps the runs)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
export PYTHONPATH="$repo/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 UMNIST_MLFLOW=off
work=${KEEP:-$(mktemp -d)}
[ -n "${KEEP:-}" ] || trap 'rm -rf "$work"' EXIT
seeds=${SEEDS:-1 2 3}
start=$(date +%s)
for seed in $seeds; do
  echo "== seed $seed"
  python3 "$repo/bench/run_pipeline.py" "$work/seed-$seed" -S "seed=$seed" "$@"
done
wall=$(( $(date +%s) - start ))
mkdir -p "$repo/bench/results"
python3 - "$wall" "$*" "$work"/seed-* > "$repo/bench/results/seeds.md" <<'PY'
import json, statistics, sys
from pathlib import Path

wall, overrides, *runs = sys.argv[1:]
runs = [Path(r) for r in runs]
HEADLINE = ("test/psnr_db", "test/kmeans_acc", "test/manifold_acc", "test/fid", "test/classifier_score",
            "test/neg_elbo", "test/iwae_nll", "test/dec_kmeans_acc")  # each for every representation that has it
rows = []
def add(name, values, note=""):
    mean, std = statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0
    rows.append(f"| {name} | {mean:.4f} | {std:.4f} | {100 * std / abs(mean) if mean else 0:.1f} % | "
                + ", ".join(f"{v:.4f}" for v in values) + f" | {note} |")
classifier = [json.loads((r / "metrics/classifier.json").read_text()) for r in runs]
for key in ("test_accuracy", "val_accuracy", "reference/fid", "reference/classifier_score"):
    add(f"classifier {key}", [c[key] for c in classifier])
names = sorted({p.stem for r in runs for p in (r / "reports/eval").glob("*.json")})
evals = {n: [json.loads((r / f"reports/eval/{n}.json").read_text()) for r in runs] for n in names}
for metric in HEADLINE:
    for name in names:
        if all(metric in e for e in evals[name]):
            add(f"{name} {metric}", [e[metric] for e in evals[name]])
for name in names:
    if all("test/classifier_score" in e for e in evals[name]):
        add(f"{name} score / real-vs-real score", [e["test/classifier_score"] / c["reference/classifier_score"]
                                                    for e, c in zip(evals[name], classifier)])
        shares = [[e[f"test/sample_class_share/{k}"] for k in range(10)] for e in evals[name]]
        add(f"{name} smallest class share", [min(s) for s in shares])
        add(f"{name} largest class share", [max(s) for s in shares])
print(f"# Seed spread\n\n`bash bench/seeds.sh{' ' + overrides if overrides else ''}`: seeds "
      f"{', '.join(r.name.removeprefix('seed-') for r in runs)}, {wall} s in all. Test split; std over the seeds "
      "(sample standard deviation).\n")
print("| metric | mean | std | std / mean | per seed | |\n|---|---|---|---|---|---|")
print("\n".join(rows))
PY
echo "wrote bench/results/seeds.md ($wall s)"
