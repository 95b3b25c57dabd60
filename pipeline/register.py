"""Stage `register`: log every evaluation (metrics, figures) into its MLflow run, log the trained models,
register them, move `candidate` and, through the quality gate, the champion of their task
-> metrics/register.json (what was compared with what, on which test set, and why)."""

from dataclasses import replace
from pathlib import Path

from unsupervised_mnist import stage
from unsupervised_mnist.config import Params
from unsupervised_mnist.data.dataset import PREPARED_DIR, load_split
from unsupervised_mnist.errors import DataError
from unsupervised_mnist.evaluation.baselines import BASELINES
from unsupervised_mnist.io import read_json, write_json
from unsupervised_mnist.models.checkpoint import load_checkpoint
from unsupervised_mnist.models.registry import load_params, spec
from unsupervised_mnist.tracking.context import data_checksum, git_state
from unsupervised_mnist.tracking.registry import ModelToRegister, gate_report, register_model
from unsupervised_mnist.tracking.runs import connect, is_enabled, log_evaluations
from unsupervised_mnist.tracking.task import task_for

REPORT = Path("metrics/register.json")  # every decision, in full (an output: strings are no metrics)
CHAMPIONS = Path("metrics/champions.json")  # per model, as numbers: `dvc metrics show` lists these
CLASSIFIER = Path("models/classifier.pt")


def to_register(name: str, params: Params, metrics: dict[str, float], images, n_samples: int) -> ModelToRegister:
    metric = spec(name).gate.metric
    if metric not in metrics:
        raise DataError(f"models/{name}.py: its gate metric {metric!r} is not a key of reports/eval/{name}.json "
                        f"(have: {', '.join(sorted(k for k in metrics if 'class_share' not in k))})")
    checkpoint = Path(f"models/{name}.pt")
    model = load_checkpoint(checkpoint)
    task = task_for(params, metric, PREPARED_DIR, CLASSIFIER, n_samples, model.denoising)
    return ModelToRegister(name, model, checkpoint, metrics, images, task)


def evaluation(name: str, stage_name: str) -> tuple[dict[str, float], list[Path], str]:
    return read_json(f"reports/eval/{name}.json"), sorted(Path(f"plots/eval/{name}").glob("*.png")), stage_name


def main(params: Params) -> None:
    images = load_split("test").noisy[:16].numpy()
    n_samples = read_json("metrics/classifier.json")["reference_n"]  # the count every FID/KID used
    evaluations = {**{name: evaluation(name, f"evaluate@{name}") for name in params.models},
                   **{name: evaluation(name, "baselines") for name in BASELINES}}
    items = {name: to_register(name, params, evaluations[name][0], images, n_samples)  # every gate metric checked
             for name in params.models}                                                # before anything is logged
    if is_enabled(params):
        client, experiment_id = connect(params)
        run_ids = log_evaluations(params, client, experiment_id, evaluations)  # the runs first...
        data, commit = data_checksum(PREPARED_DIR), git_state()[0]
        decisions = {name: register_model(params, replace(item, run_id=run_ids[name]), client, data, commit)
                     for name, item in items.items()}  # ...then the registry, which only registers
    else:
        off = {"promoted": False, "reason": "MLflow tracking is off (mlflow.enabled or UMNIST_MLFLOW)"}
        decisions = {name: gate_report(params, item) | off for name, item in items.items()}
    # Only once every model went through: a failure leaves the last report.
    write_json(REPORT, decisions)
    write_json(CHAMPIONS, {name: {"promoted": int(d["promoted"]), "candidate_version": d.get("candidate_version"),
                                  "champion_version": d.get("champion_version")} for name, d in decisions.items()})
    for name, decision in decisions.items():
        print(f"register {name}: {'champion' if decision['promoted'] else 'not champion'}: {decision['reason']}")


if __name__ == "__main__":
    stage.run(main, load_params)
