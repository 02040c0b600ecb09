"""Config values of the right type that cannot be meant, duplicate YAML keys, non-UTF-8 files, kwargs typos."""

from __future__ import annotations

import pytest

from pointnet_kit.engine.config import config_from_dict, load_config
from pointnet_kit.errors import ConfigError


@pytest.mark.parametrize(
    "override, match",
    [
        ("train.grad_clip=-1", "train.grad_clip must be > 0 or null"),
        ("train.grad_clip=0", "train.grad_clip must be > 0"),
        ("train.bn_momentum=5", r"train.bn_momentum must be in \(0, 1\]"),
        ("train.bn_momentum=0", r"train.bn_momentum must be in \(0, 1\]"),
        ("runtime.num_threads=-1", "runtime.num_threads must be >= 1"),
        ("runtime.num_threads=0", "runtime.num_threads must be >= 1"),
        (f"runtime.seed={2**63}", r"runtime.seed must be in \[0, 2\^63\)"),
        ("runtime.seed=-1", r"runtime.seed must be in \[0, 2\^63\)"),
        ("data.classes=[chair]", "at least 2 classes"),
        ("data.classes=[]", "at least 2 classes"),
        ("data.classes=[chair,table,chair]", "'chair' more than once"),
        ("optim.lr=.inf", "finite"),
        ("model.kwargs={dropuot: 0.3}", r"model.kwargs.dropuot is not an argument of model 'pointnet' \(did you mean 'dropout'\?\); accepted: .*dropout"),
        ("model.kwargs={num_classes: 3}", "set from the data"),
    ],
)
def test_values_that_cannot_be_meant(override, match):
    with pytest.raises(ConfigError, match=match):
        config_from_dict({}, [override])


def test_good_values_still_pass():
    config = config_from_dict({}, ["train.grad_clip=1.0", "train.bn_momentum=1", "runtime.num_threads=1",
                                   f"runtime.seed={2**63 - 1}", "data.classes=[a,b]", "model.kwargs={dropout: 0.3}"])
    assert config.train.grad_clip == 1.0 and config.model.kwargs == {"dropout": 0.3}


def test_duplicate_yaml_keys(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  epochs: 3\n  batch_size: 8\n  epochs: 30\n")
    with pytest.raises(ConfigError, match=r"c.yaml: duplicate key 'epochs' at line 4 \(first at line 2\)"):
        load_config(path)
    path.write_text("train:\n  epochs: 3\ntrain:\n  epochs: 4\n")
    with pytest.raises(ConfigError, match="duplicate key 'train'"):
        load_config(path)


def test_non_utf8_yaml(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("train:\n  epochs: 3  # f\u00fcr\n".encode("latin-1"))
    with pytest.raises(ConfigError, match="latin1.yaml is not UTF-8 text") as info:
        load_config(path)
    assert "\n" not in str(info.value)
