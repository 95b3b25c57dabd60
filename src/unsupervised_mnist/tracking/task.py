"""The task behind a gate metric: which test images, which corruption, which evaluator.

A metric value is evidence about a model only next to values of the same task: PSNR on noise 0.1 is
not comparable with PSNR on noise 0.5, an FID with another feature extractor or sample count is
another number. So every registered version carries its task, and the gate compares a candidate only
with the champion of its own task (alias `champion-<task key>`, see registry.py).

The identity holds what the number depends on, beyond the model: the data source and the exact test
split (its checksum covers the clean images, the labels and the fixed noisy copies, so the noise kind,
level and seed are in it), the metric, the version of the evaluation code, and, where the metric
needs them, the classifier that gives FID/KID their features, the sample count, the inputs a likelihood
bound was computed on and its importance-sample count, or the clustering settings.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from unsupervised_mnist.config import Params
from unsupervised_mnist.io import sha256_file

# Bump when the definition of a metric in evaluation/ changes: earlier values are then another task.
EVALUATOR_VERSION = "2"  # 2: IWAE draws per split, classifier without the reference images
CLASSIFIER_METRICS = ("test/fid", "test/kid", "test/classifier_score", "test/sample_class_share/")
BOUND_METRICS = ("test/neg_elbo", "test/iwae_nll")


@dataclass(frozen=True)
class Task:
    key: str  # readable and alias-safe: <source>-<noise kind>-<level>-<8 hex digits of the identity>
    identity: dict[str, str]

    @property
    def champion_alias(self) -> str:
        return f"champion-{self.key}"


def task_identity(params: Params, metric: str, prepared_dir: Path, classifier: Path, n_samples: int,
                  noisy_inputs: bool) -> dict[str, str]:
    identity = {
        "data_source": params.data.source,
        "test_split_sha256": sha256_file(prepared_dir / "test.npz")[:16],
        "noise": f"{params.noise.kind} {params.noise.level:g}",
        "metric": metric,
        "evaluator_version": EVALUATOR_VERSION,
    }
    if metric.startswith(CLASSIFIER_METRICS):
        identity["feature_extractor_sha256"] = sha256_file(classifier)[:16]
        identity["n_samples"] = str(n_samples)
    if metric in BOUND_METRICS:  # a model trained on noisy inputs is bounded on them
        identity["bound_inputs"] = "noisy" if noisy_inputs else "clean"
        if metric == "test/iwae_nll":
            identity["iwae_k"] = str(params.evaluate.iwae_k)
    if "kmeans" in metric or "manifold" in metric:
        e = params.evaluate
        identity["kmeans"] = f"inits={e.kmeans_inits} seed={params.seed}"
        if "manifold" in metric:  # one UMAP of all splits' codes, then the clusterer
            identity["manifold"] = (f"umap components={e.umap_components} neighbors={e.umap_neighbors} "
                                    f"epochs={e.umap_epochs} "
                                    f"then {e.manifold_clusterer}")
    return identity


def task_for(params: Params, metric: str, prepared_dir: Path, classifier: Path, n_samples: int,
             noisy_inputs: bool = False) -> Task:
    identity = task_identity(params, metric, prepared_dir, classifier, n_samples, noisy_inputs)
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:8]
    level = f"{params.noise.level:g}".replace(".", "p")  # aliases allow letters, digits, _ and - only
    return Task(f"{params.data.source}-{params.noise.kind.replace('_', '')}-{level}-{digest}", identity)
