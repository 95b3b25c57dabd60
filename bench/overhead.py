"""Where a `dvc repro` spends its time: training against everything else, for the default and the tiny params.

Each run is cold as a user's first one: a fresh copy of the repository (tracked and untracked-but-not-ignored
files, no DVC cache, a fresh MLflow store), `dvc repro` with tracking on. Every stage writes its own
seconds to reports/timings/<stage>.json (start-up and imports, compute, writing); DVC's own share is the
run's wall time minus the stages'. The same table as the issue that asked for it, measured side by side.

    python bench/overhead.py [--params default tiny] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from unsupervised_mnist.overrides import set_overrides

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "tests/tiny_params.yaml"  # the tests' params (and the Makefile's smoke retrain)


def copy_repo(dest: Path) -> None:
    """The working tree as git sees it, as a new repository: what a fresh clone of it would hold."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=REPO,
                            capture_output=True, text=True, check=True).stdout.split("\0")
    for name in filter(None, listed):
        if (REPO / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, dest / name)
    env = {**os.environ, "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.invalid",
           "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.invalid"}
    for command in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "bench"]):
        subprocess.run(["git", *command], cwd=dest, env=env, check=True, capture_output=True)


def write_params(folder: Path, which: str) -> None:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    if which == "tiny":
        set_overrides(params, [f"{k}={json.dumps(v)}" for k, v in yaml.safe_load(TINY.read_text()).items()])
    (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def repro(folder: Path) -> float:
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""), "DVC_NO_ANALYTICS": "1",
           "MLFLOW_DISABLE_TELEMETRY": "true", "UMNIST_MLFLOW": "on"}
    env.pop("MLFLOW_TRACKING_URI", None)
    started = time.perf_counter()
    result = subprocess.run([str(Path(bin_dir) / "dvc"), "repro"], cwd=folder, env=env, capture_output=True, text=True)
    if result.returncode:
        sys.exit(f"dvc repro failed in {folder}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return time.perf_counter() - started


def measure(which: str, keep: Path | None) -> dict:
    folder = Path(tempfile.mkdtemp(prefix=f"overhead-{which}-", dir=keep))
    copy_repo(folder)
    write_params(folder, which)
    total = repro(folder)
    stages = {json.loads(p.read_text())["stage"]: json.loads(p.read_text())
              for p in sorted((folder / "reports/timings").glob("*.json"))}
    if keep is None:
        shutil.rmtree(folder)
    return {"total": total, "stages": stages}


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def table(runs: dict[str, dict]) -> str:
    names = list(dict.fromkeys(stage for run in runs.values() for stage in run["stages"]))
    head = "| stage | " + " | ".join(f"{w}: wall s (of which start-up) " for w in runs) + "|"
    lines = [head, "|---" * (len(runs) + 1) + "|"]
    cell = lambda t: f"{t['wall_s']:.1f} ({t['import_s']:.1f})" if t else "–"  # noqa: E731
    for name in names:
        lines.append(f"| {name} | " + " | ".join(cell(run["stages"].get(name)) for run in runs.values()) + " |")
    summary = {}
    for which, run in runs.items():
        walls = {name: t["wall_s"] for name, t in run["stages"].items()}
        training = sum(s for name, s in walls.items() if name.startswith("train@"))
        summary[which] = {"dvc repro, total": run["total"], "training stages (train@*)": training,
                          "everything else": run["total"] - training,
                          "of which stage processes": sum(walls.values()) - training,
                          "of which DVC itself": run["total"] - sum(walls.values()),
                          "of which start-up and imports": sum(t["import_s"] for n, t in run["stages"].items()
                                                               if not n.startswith("train@"))}
    for key in next(iter(summary.values())):
        lines.append(f"| **{key}** | " + " | ".join(f"**{summary[w][key]:.1f}**" for w in runs) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", nargs="+", choices=("default", "tiny"), default=["default", "tiny"])
    parser.add_argument("--keep", type=Path, help="make the runs' folders here and keep them")
    args = parser.parse_args()
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
    runs = {}
    for which in args.params:
        runs[which] = measure(which, args.keep)
        print(f"{which}: dvc repro {runs[which]['total']:.1f} s", file=sys.stderr, flush=True)
    print(f"{cpu_model()}, {os.cpu_count()} cores; cold runs in fresh copies (seconds)\n")
    print(table(runs))


if __name__ == "__main__":
    main()
