"""params.yaml -> frozen, validated dataclasses.

params.yaml is the single source of every knob: there are no defaults in code, so a missing key is an
error just like an unknown one. Each field carries its rule in `metadata`; `parse_params` walks the
dataclasses, checks every key and stops at the first bad one with a single line such as
    params.yaml: noise.kind='gauss' is not one of gaussian, salt_pepper, mask
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from unsupervised_mnist.errors import ParamsError

PARAMS_FILE = "params.yaml"


# ---------------------------------------------------------------- rules a field can carry
def one_of(*allowed: str) -> Any:
    return field(metadata={"one_of": allowed})


def in_range(lo: float, hi: float, *, lo_open: bool = False, hi_open: bool = False) -> Any:
    return field(metadata={"range": (lo, hi, lo_open, hi_open)})


def _check_rule(key: str, value: Any, meta: typing.Mapping[str, Any], origin: str) -> None:
    if "one_of" in meta and value not in meta["one_of"]:
        raise ParamsError(f"{origin}: {key}={value!r} is not one of {', '.join(meta['one_of'])}")
    if "range" in meta and value is not None:
        lo, hi, lo_open, hi_open = meta["range"]
        values = value if isinstance(value, list) else [value]
        for v in values:
            too_low = v <= lo if lo_open else v < lo
            too_high = v >= hi if hi_open else v > hi
            if too_low or too_high:
                left, right = "(" if lo_open else "[", ")" if hi_open else "]"
                raise ParamsError(f"{origin}: {key}={value!r} is out of range, expected {left}{lo}, {hi}{right}")


# ---------------------------------------------------------------- the sections
@dataclass(frozen=True)
class DataParams:
    source: str = one_of("mnist5k", "mnist", "fashion-mnist", "idx")
    path: str | None = field()  # folder of IDX files; required for idx, optional for mnist/fashion-mnist
    url: str | None = field()  # download mirror for mnist/fashion-mnist; null = the official ones
    test_fraction: float = in_range(0.0, 1.0, lo_open=True, hi_open=True)  # only without an official test split
    val_fraction: float = in_range(0.0, 1.0, lo_open=True, hi_open=True)  # taken from train, stratified
    subset_fraction: float = in_range(0.0, 1.0, lo_open=True)  # stratified share of each source split kept

    def check(self, origin: str) -> None:
        if self.source == "idx" and not self.path:
            raise ParamsError(f"{origin}: data.path is required when data.source='idx' (a folder of IDX files)")


@dataclass(frozen=True)
class NoiseParams:
    kind: str = one_of("gaussian", "salt_pepper", "mask")
    level: float = in_range(0.0, 1.0)  # std for gaussian, probability for salt_pepper and mask


@dataclass(frozen=True)
class TrainParams:
    device: str = one_of("auto", "cpu", "cuda")  # auto: CUDA when present
    compile: bool = field()  # torch.compile the models
    precision: str = one_of("auto", "fp32", "bf16")  # auto: bf16 where the chip has bf16 units
    batch_size: int = in_range(1, 65536)  # the global batch: split over the processes under torchrun
    threads: int = in_range(0, 1024)  # CPU threads for torch (per process); 0 = torch's default
    nproc_per_node: int = in_range(1, 1024)  # > 1: train under torchrun (DDP) with this many processes


@dataclass(frozen=True)
class AugmentParams:
    """Random moves of the clean training images before noise (data/augment.py); 0 and 0 = off."""

    shift: float = in_range(0.0, 14.0)  # up to this many pixels in x and y
    rotate: float = in_range(0.0, 180.0)  # up to this many degrees either way


SCHEDULES = ("constant", "cosine")


def _check_channels(section: str, channels: list[int], origin: str) -> None:
    if len(channels) != 2:
        raise ParamsError(f"{origin}: {section}.channels={channels!r} must have 2 entries (for 14x14 and 7x7)")


@dataclass(frozen=True)
class DECParams:
    """The AE's clustering code: in its last `epochs` a copy of the encoder learns DEC towards `clusters` centres."""

    epochs: int = in_range(0, 100000)  # 0 = off
    clusters: int = in_range(2, 1000)
    init: str = one_of("kmeans", "umap")  # the centres: k-means of the codes, or of their UMAP embedding (N2D)
    lr: float = in_range(0.0, 1.0, lo_open=True)  # its own optimizer's constant rate (Adam)
    recon_weight: float = in_range(0.0, 1000.0)  # IDEC: + this x the reconstruction loss through the AE's decoder


@dataclass(frozen=True)
class AEParams:
    arch: str = one_of("conv", "mlp")
    hidden: list[int] = in_range(1, 16384)  # mlp widths, e.g. 784-512-256-d
    channels: list[int] = in_range(1, 4096)  # conv channels at 14x14 and 7x7
    fc: int = in_range(0, 16384)  # conv: a hidden layer of this width between the 7x7 maps and the code (0 = none)
    denoising: bool = field()  # noisy -> clean; false trains clean -> clean
    loss: str = one_of("bce", "mse", "log_mse")  # log_mse: mean of per-image log MSE, i.e. the mean PSNR
    batch_size: int | None = in_range(1, 65536)  # null: train.batch_size
    epochs: int = in_range(1, 100000)
    lr: float = in_range(0.0, 1.0, lo_open=True)
    weight_decay: float = in_range(0.0, 1.0)  # AdamW's decoupled weight decay
    schedule: str = one_of(*SCHEDULES)  # learning rate per step: constant, or cosine to 0 after the warm-up
    warmup_epochs: int = in_range(0, 100000)  # linear warm-up from 0 (0 = none; at most epochs - 1 are used)
    augment: AugmentParams = field()
    dec: DECParams = field()  # a clustering phase after the `epochs` of denoising

    def check(self, origin: str) -> None:
        _check_channels("ae", self.channels, origin)


@dataclass(frozen=True)
class VAEParams:
    arch: str = one_of("conv", "mlp")
    hidden: list[int] = in_range(1, 16384)
    channels: list[int] = in_range(1, 4096)
    fc: int = in_range(0, 16384)
    denoising: bool = field()
    beta: float = in_range(0.0, 100.0, lo_open=True)  # weight of the KL term (beta-VAE)
    kl_warmup_epochs: int = in_range(0, 100000)  # the KL weight grows linearly from 0 to beta over these
    batch_size: int | None = in_range(1, 65536)  # null: train.batch_size
    epochs: int = in_range(1, 100000)
    lr: float = in_range(0.0, 1.0, lo_open=True)
    weight_decay: float = in_range(0.0, 1.0)
    schedule: str = one_of(*SCHEDULES)
    warmup_epochs: int = in_range(0, 100000)
    augment: AugmentParams = field()

    def check(self, origin: str) -> None:
        _check_channels("vae", self.channels, origin)


@dataclass(frozen=True)
class GANParams:
    loss: str = one_of("ns", "hinge", "wgan-gp")
    channels: list[int] = in_range(1, 4096)  # D and E at 14x14 / 7x7; G mirrors them
    batch_size: int | None = in_range(1, 65536)  # null: train.batch_size
    epochs: int = in_range(1, 100000)
    lr: float = in_range(0.0, 1.0, lo_open=True)  # generator and encoder
    d_lr: float = in_range(0.0, 1.0, lo_open=True)  # discriminator (two time-scale rule: may differ from lr)
    beta1: float = in_range(0.0, 1.0, hi_open=True)  # Adam's first beta: 0.5 in DCGAN, 0 for WGAN-GP
    spectral_norm: bool = field()  # spectral normalisation of D's layers (Miyato et al., 2018)
    ema: float = in_range(0.0, 1.0, hi_open=True)  # decay of the generator's weight average (0 = off)
    ema_bn: str = one_of("copy", "resample")  # the average's batch-norm statistics: the live G's, or its own samples'
    fc: int = in_range(0, 16384)  # G: a hidden layer of this width between the code and the 7x7 maps (0 = none)
    d_dropout: float = in_range(0.0, 1.0, hi_open=True)  # dropout before D's last layer
    encoder_epochs: int = in_range(0, 100000)  # 0: E learns in every GAN step; else in this many epochs after
    gp_weight: float = in_range(0.0, 1000.0)  # gradient penalty weight (wgan-gp only)
    encoder_weight: float = in_range(0.0, 1000.0)  # weight of the encoder's image-reconstruction term
    schedule: str = one_of(*SCHEDULES)
    warmup_epochs: int = in_range(0, 100000)
    augment: AugmentParams = field()

    def check(self, origin: str) -> None:
        _check_channels("gan", self.channels, origin)


@dataclass(frozen=True)
class ClassifierParams:
    channels: list[int] = in_range(1, 4096)  # the two conv blocks (at 28x28 and 14x14)
    dropout: float = in_range(0.0, 1.0, hi_open=True)
    epochs: int = in_range(1, 100000)
    lr: float = in_range(0.0, 1.0, lo_open=True)  # AdamW's peak rate, then a cosine to 0
    weight_decay: float = in_range(0.0, 1.0)
    augment: AugmentParams = field()

    def check(self, origin: str) -> None:
        _check_channels("classifier", self.channels, origin)


@dataclass(frozen=True)
class EvaluateParams:
    kmeans_inits: int = in_range(1, 1000)  # k-means restarts (sklearn n_init)
    manifold: str = one_of("none", "umap")  # umap: N2D-style UMAP of the codes, then manifold_clusterer
    manifold_clusterer: str = one_of("kmeans", "gmm")  # on the UMAP embedding
    umap_components: int = in_range(1, 100)
    umap_neighbors: int = in_range(2, 1000)
    umap_epochs: int = in_range(1, 100000)  # UMAP's layout epochs (its own default: 500 below 10,000 points)
    iwae_k: int = in_range(1, 100000)  # importance samples for the VAE's IWAE bound
    n_samples: int = in_range(2, 1000000)  # generated images for FID/KID (capped by val/test size)


@dataclass(frozen=True)
class MLflowParams:
    enabled: bool = field()  # false, or env UMNIST_MLFLOW=off: no tracking; register only writes its report
    experiment: str = field()  # one experiment for every run of the pipeline
    model_prefix: str = field()  # registered names: <prefix>-ae-denoiser, <prefix>-gan-generator, ...
    system_metrics: bool = field()  # MLflow's CPU/GPU/memory sampling during training

    def check(self, origin: str) -> None:
        for key in ("experiment", "model_prefix"):
            if not getattr(self, key).strip():
                raise ParamsError(f"{origin}: mlflow.{key} must not be empty")


@dataclass(frozen=True)
class GateParams:
    """The quality gate of one model: `champion` moves only when `metric` passes `floor` and beats
    the current champion's by at least `min_improvement`."""

    metric: str = field()  # a key of reports/eval/<model>.json, e.g. test/psnr_db
    goal: str = one_of("max", "min")  # whether higher or lower is better
    min_improvement: float = in_range(0.0, 1e12)  # in the metric's own units
    floor: float = field()  # the worst acceptable value: a minimum for goal max, a maximum for goal min


@dataclass(frozen=True)
class RegisterParams:
    ae: GateParams = field()
    vae: GateParams = field()
    gan: GateParams = field()


@dataclass(frozen=True)
class Params:
    seed: int = in_range(0, 2**31 - 1)
    latent_dim: int = in_range(1, 4096)  # shared by every model and the PCA baseline
    data: DataParams = field()
    noise: NoiseParams = field()
    train: TrainParams = field()
    ae: AEParams = field()
    vae: VAEParams = field()
    gan: GANParams = field()
    classifier: ClassifierParams = field()
    evaluate: EvaluateParams = field()
    mlflow: MLflowParams = field()
    register: RegisterParams = field()

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def _hash(self, *sections: str) -> str:
        wanted = {name: self.to_dict()[name] for name in sections}
        return hashlib.sha256(json.dumps(wanted, sort_keys=True).encode()).hexdigest()[:16]

    def params_hash(self) -> str:
        """All of params.yaml: the `params_hash` tag of every MLflow run."""
        return self._hash(*self.to_dict())

    def model_hash(self, name: str) -> str:
        """What shapes the trained model `name` (seed, latent size, data, noise, training, its own section):
        names its resumable checkpoint and is part of a registered version's identity."""
        return self._hash("seed", "latent_dim", "data", "noise", "train", name)


# ---------------------------------------------------------------- parsing
def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp)).replace("NoneType", "null")


def _coerce(key: str, value: Any, tp: Any, origin: str) -> Any:
    """Check `value` against the annotation `tp`; return it in the right Python type."""
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ParamsError(f"{origin}: {key} must be a mapping, got {value!r}")
        return _build(tp, value, f"{key}.", origin)
    args = typing.get_args(tp)
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(key, value, inner[0], origin)
    if typing.get_origin(tp) is list:
        if not isinstance(value, list) or not value:
            raise ParamsError(f"{origin}: {key}={value!r} must be a non-empty list of {_type_name(args[0])}")
        return [_coerce(f"{key}[{i}]", v, args[0], origin) for i, v in enumerate(value)]
    ok = {
        bool: isinstance(value, bool),
        int: isinstance(value, int) and not isinstance(value, bool),
        float: isinstance(value, (int, float)) and not isinstance(value, bool),
        str: isinstance(value, str),
    }[tp]
    if not ok:
        raise ParamsError(f"{origin}: {key}={value!r} must be of type {_type_name(tp)}")
    if tp is float and not math.isfinite(value):  # nan slips through every range check; inf is never meant
        raise ParamsError(f"{origin}: {key}={value!r} must be a finite number")
    return float(value) if tp is float else value


def _build(cls: type, mapping: dict[str, Any], prefix: str, origin: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    for key in mapping:
        if key not in names:
            raise ParamsError(f"{origin}: unknown key {prefix}{key} (allowed: {', '.join(names)})")
    values = {}
    for f in dataclasses.fields(cls):
        key = prefix + f.name
        if f.name not in mapping:
            raise ParamsError(f"{origin}: {key} is missing")
        values[f.name] = _coerce(key, mapping[f.name], hints[f.name], origin)
        _check_rule(key, values[f.name], f.metadata, origin)
    obj = cls(**values)
    if hasattr(obj, "check"):
        obj.check(origin)
    return obj


def parse_params(mapping: Any, origin: str = PARAMS_FILE) -> Params:
    if not isinstance(mapping, dict):
        raise ParamsError(f"{origin}: expected a mapping of sections at the top level")
    return _build(Params, mapping, "", origin)


def set_overrides(mapping: Any, assignments: list[str], origin: str = PARAMS_FILE) -> Any:
    """Apply `key=value` assignments, the form of `dvc exp run -S`, to a params mapping in place (a plain
    dict, or ruamel's comment-keeping one). Values are read as YAML (3 -> int, 0.5 -> float, [1, 2] -> list);
    only existing keys can be set."""
    for assignment in assignments:
        key, sep, raw = assignment.partition("=")
        if not sep or not key:
            raise ParamsError(f"override {assignment!r}: expected key=value, e.g. ae.epochs=30")
        *parents, leaf = key.split(".")
        node = mapping
        for part in parents:
            if not isinstance(node, dict) or part not in node:
                raise ParamsError(f"override {assignment!r}: {origin} has no section {part!r}")
            node = node[part]
        if not isinstance(node, dict) or leaf not in node:
            raise ParamsError(f"override {assignment!r}: {origin} has no key {key!r}")
        node[leaf] = _yaml_value(raw)
    return mapping


def _yaml_value(raw: str) -> Any:
    import yaml

    value = yaml.safe_load(raw)
    if isinstance(value, str):  # YAML 1.1 reads 1e-3 as text, DVC's YAML 1.2 as a number: take the number
        try:
            return float(value) if value.lower().lstrip("+-") not in ("nan", "inf", "infinity") else value
        except ValueError:
            pass
    return value


def load_params(path: str | Path = PARAMS_FILE) -> Params:
    import yaml

    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ParamsError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        mapping = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    return parse_params(mapping, str(path))
