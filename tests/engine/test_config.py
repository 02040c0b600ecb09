from pathlib import Path

import pytest
import yaml

from pointnet_kit.engine.config import Config, config_from_dict, load_config, parse_override
from pointnet_kit.errors import ConfigError

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs").glob("*.yaml"))


def test_overrides_are_typed_and_nested():
    config = config_from_dict({}, ["train.epochs=7", "optim.lr=2e-3", "data.classes=[a, b]", "model.kwargs.dropout=0.5"])
    assert config.train.epochs == 7
    assert config.optim.lr == pytest.approx(2e-3)
    assert config.data.classes == ["a", "b"]
    assert config.model.kwargs == {"dropout": 0.5}


def test_int_is_accepted_where_float_is_expected():
    assert config_from_dict({}, ["optim.lr=1"]).optim.lr == 1.0


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.epohs=3", "did you mean 'train.epochs'"),
        ("nope=1", "unknown config key 'nope'"),
        ("train.epochs=many", "train.epochs must be int"),
        ("train.epochs=2.5", "train.epochs must be int"),
        ("runtime.compile=maybe", "runtime.compile must be bool"),
        ("train.augmentations=5", "must be a list"),
        ("optim.name=lbfgs", "optim.name must be adam, adamw or sgd"),
        ("train.batch_size=1", "BatchNorm"),
        ("train.epochs", "not key=value"),
    ],
)
def test_bad_overrides_are_clear_errors(override, message):
    with pytest.raises(ConfigError, match=message):
        config_from_dict({}, [override])


def test_parse_override_builds_nested_dict():
    assert parse_override("a.b.c=3") == {"a": {"b": {"c": 3}}}


def test_unknown_key_in_yaml_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("train:\n  epochs: 3\n  lerning_rate: 0.1\n")
    with pytest.raises(ConfigError, match="train.lerning_rate"):
        load_config(path)


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")


def test_resolved_config_round_trips_through_yaml():
    config = config_from_dict({}, ["train.epochs=3", "data.root=/somewhere"])
    again = config_from_dict(yaml.safe_load(config.to_yaml()))
    assert again == config


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_shipped_configs_load(path):
    assert isinstance(load_config(path), Config)


def test_default_yaml_matches_builtin_defaults():
    default = Path(__file__).resolve().parents[2] / "configs" / "default.yaml"
    assert load_config(default) == Config()


def test_paper_recipe_values():
    config = load_config(Path(__file__).resolve().parents[2] / "configs" / "pointnet_modelnet40.yaml")
    assert (config.data.num_points, config.train.batch_size, config.train.epochs) == (1024, 32, 250)
    assert (config.optim.name, config.optim.lr) == ("adam", 0.001)
    assert (config.schedule.name, config.schedule.step_size, config.schedule.gamma) == ("step", 20, 0.7)
    assert config.model.kwargs["feature_transform_weight"] == 0.001
    assert [a["name"] for a in config.train.augmentations] == ["rotate_z", "jitter"]


def test_moved_regularizer_weight_names_its_new_place(tmp_path):
    message = "train.feature_transform_weight moved to model.kwargs.feature_transform_weight"
    with pytest.raises(ConfigError, match=message):
        config_from_dict({}, ["train.feature_transform_weight=0.01"])
    path = tmp_path / "old.yaml"
    path.write_text("train:\n  feature_transform_weight: 0.001\n")
    with pytest.raises(ConfigError, match=f"{path}: {message}"):
        load_config(path)
    assert config_from_dict({}, ["model.kwargs.feature_transform_weight=0.01"]).model.kwargs == {"feature_transform_weight": 0.01}
