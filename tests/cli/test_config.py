"""``pointnet-kit config list | show`` and shipped configs by name."""

from __future__ import annotations

import dataclasses
import json

import pytest
import yaml

from pointnet_kit.cli.config import description, field_docs, render_config
from pointnet_kit.cli.main import main
from pointnet_kit.engine.config import CONFIG_DIR, Config, list_configs, load_config, resolve_config
from pointnet_kit.errors import ConfigError


def test_configs_ship_inside_the_package():
    assert CONFIG_DIR.parent.name == "pointnet_kit"
    assert {"default", "pointnet_modelnet40", "pointnet_modelnet10"} <= set(list_configs())


def test_config_by_name_file_or_configs_path(tmp_path):
    by_name = load_config("pointnet_modelnet40")
    assert by_name == load_config(CONFIG_DIR / "pointnet_modelnet40.yaml")
    assert resolve_config("pointnet_modelnet40.yaml") == CONFIG_DIR / "pointnet_modelnet40.yaml"
    # `configs/NAME.yaml` as the README writes it works from any folder (the wheel has no top-level configs/)
    assert resolve_config("configs/pointnet_modelnet10.yaml").name == "pointnet_modelnet10.yaml"
    own = tmp_path / "mine.yaml"
    own.write_text("train: {epochs: 3}\n")
    assert load_config(own).train.epochs == 3


def test_unknown_config_name_suggests_the_closest():
    with pytest.raises(ConfigError, match="did you mean 'pointnet_modelnet40'"):
        resolve_config("pointnet_modelnet04")


def test_list_prints_every_config_with_a_description(capsys):
    assert main(["config", "list"]) == 0
    out = capsys.readouterr().out
    for name in list_configs():
        line = next(l for l in out.splitlines() if l.startswith(name + " "))
        assert len(line.split(None, 1)[1]) > 10, line
    assert main(["config", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == list_configs()


def test_description_is_the_first_sentence_of_the_first_comment(tmp_path):
    path = tmp_path / "x.yaml"
    path.write_text("# PointNet on X, e.g. the paper. More text\n# continues.\nmodel: {}\n")
    assert description(path) == "PointNet on X, e.g. the paper."


def test_every_config_key_has_a_comment():
    docs = field_docs()
    for section in dataclasses.fields(Config):
        assert docs.get(section.name), section.name
        for f in dataclasses.fields(section.type if isinstance(section.type, type) else type(getattr(Config(), section.name))):
            assert docs.get(f"{section.name}.{f.name}"), f"{section.name}.{f.name} has no docstring in engine/config.py"


def test_show_is_loadable_yaml_equal_to_the_resolved_config(capsys, tmp_path):
    assert main(["config", "show", "pointnet_modelnet40", "train.epochs=1", "data.classes=[chair, table]"]) == 0
    out = capsys.readouterr().out
    expected = load_config("pointnet_modelnet40", ["train.epochs=1", "data.classes=[chair, table]"])
    assert yaml.safe_load(out) == expected.to_dict()
    assert "overrides: train.epochs=1" in out
    epochs_line = next(l for l in out.splitlines() if l.strip().startswith("epochs:"))
    assert "# Epochs to train" in epochs_line
    # what `show` prints is a config `train --config` accepts as it is
    saved = tmp_path / "shown.yaml"
    saved.write_text(out)
    assert load_config(saved) == expected


def test_show_defaults_and_bad_arguments(capsys):
    assert main(["config", "show"]) == 0
    assert yaml.safe_load(capsys.readouterr().out) == Config().to_dict()
    # user mistakes: one line on stderr, exit status 2
    assert main(["config", "show", "train.epohs=1"]) == 2
    assert "unknown config key 'train.epohs'" in capsys.readouterr().err
    assert main(["config", "show", "default", "train.epochs=1", "extra"]) == 2
    assert "one NAME" in capsys.readouterr().err


def test_render_comments_align_and_values_round_trip():
    config = load_config(None, ["train.augmentations=[{name: scale, low: 0.9}]", "data.root='a: b'"])
    text = render_config(config)
    assert yaml.safe_load(text) == config.to_dict()


@pytest.mark.slow  # ~9 s: reads all of modelnet40_ply_hdf5_1024 before keeping two classes
def test_train_by_config_name_from_outside_the_repository(shared_data, tmp_path, monkeypatch, capsys):
    """The issue's check: a shipped config by name, real data, from a folder with no configs/ in it."""
    monkeypatch.chdir(tmp_path)
    status = main([
        "train", "--config", "pointnet_modelnet40", f"data.root={shared_data / 'modelnet40_ply_hdf5_1024'}",
        "train.epochs=1", "data.classes=[bowl, cup]", "data.num_points=32", "train.batch_size=16",
        "runtime.progress=false", "runtime.tensorboard=false", "runtime.num_threads=1", "--out", "run",
    ])
    assert status == 0, capsys.readouterr().err
    assert (tmp_path / "run" / "checkpoint_best.pt").is_file()
    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["schedule"]["gamma"] == 0.7
