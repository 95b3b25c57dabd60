import pytest
from helpers import MODELS, REPO, params_with, run_stage, write_params

from unsupervised_mnist import config
from unsupervised_mnist.errors import ParamsError
from unsupervised_mnist.models.registry import load_params, parse_params, registered


def test_repo_params_are_valid():
    params = load_params(REPO / "params.yaml")
    assert params.data.source == "mnist5k"
    assert params.noise.kind in ("gaussian", "salt_pepper", "mask")
    assert params.models == MODELS and set(MODELS) <= set(registered())
    for name in MODELS:  # each model's section, and its gate's thresholds
        assert params.model(name).epochs >= 1 and getattr(params.register, name).floor is not None


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"noise.kind": "gauss"}, "params.yaml: noise.kind='gauss' is not one of gaussian, salt_pepper, mask"),
        ({"noise.level": 1.5}, "params.yaml: noise.level=1.5 is out of range, expected [0.0, 1.0]"),
        ({"noise.level": "high"}, "params.yaml: noise.level='high' must be of type float"),
        ({"seed": True}, "params.yaml: seed=True must be of type int"),
        ({"data.test_fraction": 0}, "params.yaml: data.test_fraction=0.0 is out of range, expected (0.0, 1.0)"),
        ({"data.source": "cifar"}, "params.yaml: data.source='cifar' is not one of mnist5k, mnist, fashion-mnist, idx"),
        ({"data.source": "idx"}, "params.yaml: data.path is required when data.source='idx'"),
        ({"data.colour": 1}, "params.yaml: unknown key data.colour (allowed: source, path, url,"),
        ({"noise": None}, "params.yaml: noise must be a mapping, got None"),
        ({"ae.lr": float("nan")}, "params.yaml: ae.lr=nan must be a finite number"),
        ({"vae.beta": float("inf")}, "params.yaml: vae.beta=inf must be a finite number"),
        ({"register.ae.floor": float("-inf")}, "params.yaml: register.ae.floor=-inf must be a finite number"),
        ({"models": ["ae", "cae"]}, "params.yaml: models: 'cae' is not a registered model (registered: "),
        ({"models": []}, "params.yaml: models=[] must be a non-empty list of distinct model names"),
        ({"models": ["ae", "ae"]}, "params.yaml: models=['ae', 'ae'] must be a non-empty list of distinct"),
        ({"train.compile": True, "gan.loss": "wgan-gp"}, "params.yaml: gan.loss='wgan-gp' cannot train with "
                                                         "train.compile=true"),
    ],
)
def test_bad_values_name_key_value_and_rule(overrides, message):
    with pytest.raises(ParamsError) as error:
        parse_params(params_with(overrides))
    assert str(error.value).startswith(message)


def test_missing_key_is_named():
    params = params_with({})
    del params["noise"]["level"]
    with pytest.raises(ParamsError, match=r"^params.yaml: noise.level is missing$"):
        parse_params(params)


def test_a_listed_model_needs_its_section_and_gate_and_an_unlisted_one_may_keep_them():
    params = params_with({})
    del params["register"][MODELS[-1]]
    with pytest.raises(ParamsError, match=rf"^params.yaml: register.{MODELS[-1]}.min_improvement is missing$"):
        parse_params(params)
    params = params_with({"models": MODELS[:1]})  # the others' sections stay, still checked
    assert parse_params(params).models == MODELS[:1]
    params[MODELS[-1]]["epochs"] = 0
    with pytest.raises(ParamsError, match=rf"^params.yaml: {MODELS[-1]}.epochs=0 is out of range"):
        parse_params(params)


def test_reads_are_recorded_leaf_by_leaf_and_hashing_is_no_read():
    params = parse_params(params_with({}))
    params.params_hash(), params.model_hash(MODELS[0]), params.to_dict()
    assert params.reads() == set()  # checking, hashing and logging every value read nothing
    assert params.train.precision and params.model(MODELS[0]).lr and params.models
    assert params.reads() == {"train.precision", f"{MODELS[0]}.lr", "models"}


def test_shared_sections_alone_for_a_stage_that_reads_no_model():
    params = config.parse_params(params_with({}))  # no model rules: their sections are left out
    assert params.noise.level == 0.5 and not hasattr(params, MODELS[0]) and not hasattr(params, "register")


def test_int_is_accepted_for_float_and_converted():
    assert parse_params(params_with({"noise.level": 0})).noise.level == 0.0


@pytest.mark.parametrize(("yaml_value", "line"), [
    ("kind: gauss", "noise.kind='gauss' is not one of gaussian, salt_pepper, mask"),
    ("lr: .nan", "ae.lr=nan must be a finite number"),
])
def test_stage_prints_one_line_and_exits_nonzero(tmp_path, yaml_value, line):
    write_params(tmp_path)
    text = (tmp_path / "params.yaml").read_text()
    key = yaml_value.split(":")[0]
    # the first `kind:` is noise.kind, the first `lr:` is ae.lr: replace the value YAML spells there
    start = text.index(f"  {key}: ")
    end = text.index("\n", start)
    (tmp_path / "params.yaml").write_text(text[:start] + f"  {yaml_value}" + text[end:])
    result = run_stage(tmp_path, "check", check=False)
    assert result.returncode == 2
    assert result.stderr == f"error: params.yaml: {line}\n"
    assert not (tmp_path / "data").exists()


def test_unreadable_yaml(tmp_path):
    (tmp_path / "params.yaml").write_text("seed: [unclosed\n")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_params(tmp_path / "params.yaml")
