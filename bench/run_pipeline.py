"""Run the pipeline's stages, in dvc.yaml's order, as plain processes: no DVC, no MLflow (a GPU machine or a
benchmark needs neither). The stages are read from dvc.yaml itself (foreach expanded), so this never drifts
from the pipeline; `register` is left out (with tracking off it only writes its report).

    python bench/run_pipeline.py WORKDIR [--profile profiles/full-size.yaml] [-S key=value ...]

WORKDIR gets params.yaml (the repository's, then the profile's and the -S values) and every output; each
stage's wall time is printed as it ends and written to WORKDIR/stage_seconds.json (the stages' own
split of it into start-up, compute and writing is in WORKDIR/reports/timings/).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

from unsupervised_mnist.models.registry import parse_params
from unsupervised_mnist.overrides import set_overrides

REPO = Path(__file__).resolve().parents[1]
LEFT_OUT = {"register"}


def stage_commands(params: dict) -> list[tuple[str, list[str]]]:
    """(DVC's stage name, argv) for every stage of dvc.yaml, in its (topological) order; a foreach stage once
    per item of the params list it names (`${models}`)."""
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    commands = []
    for name, stage in stages.items():
        if "foreach" in stage:
            items = stage["foreach"]
            items = params[items.strip("${}")] if isinstance(items, str) else items
            for item in items:
                commands.append((f"{name}@{item}", stage["do"]["cmd"].replace("${item}", str(item)).split()))
        elif name not in LEFT_OUT:
            commands.append((name, stage["cmd"].split()))
    return commands


def write_params(workdir: Path, profile: Path | None, overrides: list[str]) -> None:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    if profile is not None:
        set_overrides(params, [f"{k}={json.dumps(v)}" for k, v in yaml.safe_load(profile.read_text()).items()],
                      str(profile))
    set_overrides(params, overrides, "-S")
    parse_params(params, "params")  # stop on a bad value before any stage runs
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def run(workdir: Path, log=print) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO / "src"), os.environ.get("PYTHONPATH")])),
           "UMNIST_MLFLOW": "off", "PYTHONUNBUFFERED": "1"}
    seconds = {}
    params = yaml.safe_load((workdir / "params.yaml").read_text())
    for name, (_python, script, *args) in stage_commands(params):  # dvc.yaml says "python": this interpreter
        started = time.perf_counter()
        with open(workdir / f"{name}.log", "w") as out:
            code = subprocess.run([sys.executable, str(REPO / script), *args], cwd=workdir, env=env, stdout=out,
                                  stderr=subprocess.STDOUT).returncode
        seconds[name] = time.perf_counter() - started
        if code:
            sys.exit(f"stage {name} failed (exit {code}):\n" + (workdir / f"{name}.log").read_text()[-4000:])
        log(f"   {name}: {seconds[name]:.1f} s")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workdir", type=Path)
    parser.add_argument("--profile", type=Path, help="a profile of key: value lines over params.yaml")
    parser.add_argument("-S", "--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    write_params(args.workdir, args.profile, args.set)
    seconds = run(args.workdir)
    (args.workdir / "stage_seconds.json").write_text(json.dumps(seconds, indent=2) + "\n")


if __name__ == "__main__":
    main()
