import pytest
import yaml
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


def test_stage_prints_one_line_and_exits_nonzero(tmp_path):
    write_params(tmp_path, {"noise.kind": "gauss"})
    result = run_stage(tmp_path, "check", check=False)
    assert result.returncode == 2
    assert result.stderr == "error: params.yaml: noise.kind='gauss' is not one of gaussian, salt_pepper, mask\n"
    assert not (tmp_path / "data").exists()


def test_unreadable_yaml(tmp_path):
    (tmp_path / "params.yaml").write_text("seed: [unclosed\n")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_params(tmp_path / "params.yaml")
    yaml.safe_load("seed: 1")
