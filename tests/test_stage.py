"""What every stage process shares (stage.py): its wall time split into start-up, compute and writing, the
params it read, and an allocator that keeps freed buffers."""

import json
import shutil
import subprocess
import sys
import time

import pytest
from helpers import ENV, REPO, write_params


def test_a_stages_timings_account_for_its_whole_process(tiny_prepared, tmp_path):
    """Timed from outside, the stage's process lasts what its reports/timings file says, to a few percent: no
    phase left out. Start-up (the interpreter and the imports: torch alone takes about a second) comes before
    the stage runs, the training inside its compute, and writing its outputs is counted apart."""
    write_params(tmp_path, {"ae.epochs": 2, "ae.dec.epochs": 1})
    shutil.copytree(tiny_prepared / "data/prepared", tmp_path / "data/prepared")
    env = {**ENV, "UMNIST_PARAMS_READ": str(tmp_path / "reads")}
    started = time.perf_counter()
    result = subprocess.run([sys.executable, str(REPO / "pipeline/train.py"), "ae"], cwd=tmp_path, env=env,
                            capture_output=True, text=True)
    outside = time.perf_counter() - started
    assert result.returncode == 0, result.stderr[-3000:]
    t = json.loads((tmp_path / "reports/timings/train@ae.json").read_text())
    assert 0.9 * outside <= t["wall_s"] <= outside + 0.05, (t, outside)
    assert t["import_s"] > 0.3 and 0 < t["train_s"] <= t["compute_s"] and t["write_s"] > 0, t
    assert abs(t["import_s"] + t["compute_s"] + t["write_s"] - t["wall_s"]) < 0.02, t
    reads = json.loads((tmp_path / "reads/train@ae.json").read_text())
    assert {"seed", "noise.kind", "train.precision", "ae.lr", "ae.dec.epochs"} <= set(reads)
    assert not [key for key in reads if key.startswith(("data.", "classifier.", "register."))], reads


PAGE_FAULTS = """
import resource, sys
import numpy as np
from unsupervised_mnist.stage import keep_freed_memory
kept = keep_freed_memory() if sys.argv[1] == "kept" else None
def step():  # a training step's large buffers (the AE's fc weight gradients are 6.4 MB), freed at its end
    for buffer in [np.empty(1_600_000, np.float32) for _ in range(4)]:
        buffer.fill(1.0)
step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    step()
print(kept, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_a_stage_keeps_freed_buffers_instead_of_faulting_them_in_every_step():
    """Without keep_freed_memory, glibc gives freed 6.4 MB blocks back to the system and the next step touches
    fresh pages (1,600 page faults a block); with it, the blocks are reused."""
    faults = {}
    for mode in ("kept", "default"):
        out = subprocess.run([sys.executable, "-c", PAGE_FAULTS, mode], capture_output=True, text=True, env=ENV,
                             check=True).stdout.split()
        faults[mode] = int(out[1])
        assert out[0] == ("True" if mode == "kept" else "None")
    assert faults["kept"] < 200 and faults["default"] > 10_000, faults
