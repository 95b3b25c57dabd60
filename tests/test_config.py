import pytest
from helpers import REPO, params_with, run_stage, write_params

from unsupervised_mnist.config import load_params, parse_params
from unsupervised_mnist.errors import ParamsError


def test_repo_params_are_valid():
    params = load_params(REPO / "params.yaml")
    assert params.data.source == "mnist5k"
    assert params.noise.kind in ("gaussian", "salt_pepper", "mask")


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
