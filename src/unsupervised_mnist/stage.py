"""What every pipeline entry point shares: load params, run, turn a UserError into one line, and keep the
stage's wall time in reports/timings/<stage>.json (not a DVC output: it varies from run to run)."""

from __future__ import annotations

import ctypes
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from unsupervised_mnist import io
from unsupervised_mnist.config import PARAMS_FILE, Params, load_params
from unsupervised_mnist.errors import UserError

TIMINGS_DIR = Path("reports/timings")
READS_ENV = "UMNIST_PARAMS_READ"


def stage_name() -> str:
    """DVC's name for the running stage (`train@ae`), or the same name built from the command line."""
    script = Path(sys.argv[0]).stem
    return os.environ.get("DVC_STAGE") or (f"{script}@{sys.argv[1]}" if len(sys.argv) > 1 else script)


def process_age_s() -> float:
    """Seconds since this process started: the interpreter's start-up and the imports so far."""
    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])  # field 22: start time
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return max(uptime - ticks / os.sysconf("SC_CLK_TCK"), 0.0)
    except (OSError, ValueError, IndexError):  # not Linux: the imports go uncounted
        return 0.0


def keep_freed_memory() -> bool:
    """glibc hands every freed block over its mmap threshold back to the system, so a training step's
    multi-megabyte buffers (the AE's 6.4 MB fc weight gradients) are page-faulted in afresh every step: 10 % of
    the AE's step in torch.profiler (`fill_`). A fixed threshold at glibc's cap (32 MiB) and a high trim threshold
    keep them in the heap for reuse: the AE's step runs 23-36 % faster (bench/headroom.py, fp32 and bf16); the
    others do not change. Memory a stage frees is kept until it ends. False where the C library is not glibc."""
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # malloc.h
    return bool(mallopt(m_trim_threshold, 1 << 30)) and bool(mallopt(m_mmap_threshold, 32 << 20))


def write_timings(name: str, import_s: float, run_s: float, extra: dict[str, Any]) -> None:
    if os.environ.get("RANK", "0") != "0":  # under torchrun, rank 0 speaks for the stage
        return
    write_s = io.seconds_writing()
    io.write_json(TIMINGS_DIR / f"{name}.json", {
        "stage": name, "wall_s": round(import_s + run_s, 2), "import_s": round(import_s, 2),
        "compute_s": round(run_s - write_s, 2), "write_s": round(write_s, 2), **extra,
    })


def write_reads(name: str, params: Params) -> None:
    """With UMNIST_PARAMS_READ=DIR, the params keys this stage read go to DIR/<stage>.json: what dvc.yaml must
    list for it (tests/test_lineage.py compares them)."""
    folder = os.environ.get(READS_ENV)
    if folder and os.environ.get("RANK", "0") == "0":
        io.write_json(Path(folder) / f"{name}.json", sorted(params.reads()))


def run(main: Callable[[Params], dict[str, Any] | None],
        load: Callable[[str], Params] = load_params) -> NoReturn:
    """Run a stage's `main(params)` and end the process; what `main` returns (if anything) joins its timings.
    `load` reads params.yaml (UMNIST_PARAMS names another file): config's own checks the shared sections only;
    a stage that reads model sections passes models.registry.load_params, which checks them too (a stage that
    reads none need not import the models, nor torch).

    A stage ends with `os._exit` once its outputs are written: each went through io.atomic_path (written,
    closed, renamed) and MLflow runs are ended explicitly, so nothing is left for the interpreter's teardown
    to do but free torch's, scikit-learn's and MLflow's modules one by one, which costs 0.3-0.6 s per stage
    process (measured), a run's worth of it in every `dvc repro`."""
    import_s, started = process_age_s(), time.perf_counter()
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DVC_NO_ANALYTICS", "1")
    keep_freed_memory()
    try:
        params = load(os.environ.get("UMNIST_PARAMS", PARAMS_FILE))
        extra = main(params) or {}
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    write_timings(stage_name(), import_s, time.perf_counter() - started, extra)
    write_reads(stage_name(), params)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
