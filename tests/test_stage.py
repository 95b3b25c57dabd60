"""What every stage process shares (stage.py): its wall time split into start-up, compute and writing, and the
params it read."""

import json
import shutil
import subprocess
import sys
import time

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
