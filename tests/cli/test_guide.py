"""The CLI's conventions (no abbreviations, defaults shown) and its hints."""

from __future__ import annotations

import argparse
import io
import subprocess
import sys

import pytest

from pointnet_kit.cli.guide import _meaningful_default, add_parser, finish_parser, next_steps, subparsers_of, tensorboard_missing
from pointnet_kit.cli.main import build_parser


def _all_parsers(parser):
    yield parser
    for sub in subparsers_of(parser).values():
        yield from _all_parsers(sub)


def test_every_parser_refuses_abbreviations_and_shows_defaults():
    parser = build_parser()
    parsers = list(_all_parsers(parser))
    assert len(parsers) > 10
    for p in parsers:
        assert p.allow_abbrev is False, p.prog
        assert p.format_help()  # every --help renders (a stray % in a help text would raise here)
        formatter = p._get_formatter()
        for action in p._actions:
            if _meaningful_default(action):  # every option whose default says something shows it
                assert "default" in formatter._get_help_string(action).lower(), (p.prog, action.dest)
    with pytest.raises(SystemExit) as exc:
        parser.parse_args(["eval", "run", "--vote", "3"])
    assert exc.value.code == 2


def test_help_formatter_shows_defaults_once():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    p = add_parser(sub, "x", help="do x")
    p.add_argument("--n", type=int, default=4, help="how many")
    p.add_argument("--m", type=int, default=5)
    p.add_argument("--k", default="a", help="k (default: a, the first)")
    p.add_argument("--flag", action="store_true", help="a flag")
    finish_parser(parser)
    text = " ".join(p.format_help().split())
    assert "how many (default: 4)" in text
    assert "--m M (default: 5)" in text
    assert text.count("default: a") == 1
    assert "a flag (default" not in text
    assert p.allow_abbrev is False and parser.allow_abbrev is False


def test_help_and_version_do_not_import_torch():
    code = (
        "import sys\nfrom pointnet_kit.cli.main import build_parser\nbuild_parser().format_help()\n"
        "heavy = [m for m in ('torch', 'open3d', 'h5py', 'trimesh') if m in sys.modules]\nprint(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_next_steps_names_the_run(tmp_path):
    run = tmp_path / "runs" / "default-1"
    (run / "tensorboard").mkdir(parents=True)
    text = next_steps(run)
    for command in ("eval", "report", "viz predictions", "export", "predict", "tensorboard --logdir"):
        assert command in text
    assert f"pointnet-kit eval {run} " in text
    assert "tensorboard" not in next_steps(tmp_path / "other", tensorboard=False).split("export")[-1]
    comments = [line.index("  # ") for line in text.splitlines() if "  # " in line]
    assert len(set(comments)) == 1  # aligned


def test_tensorboard_missing_warns_once_with_the_fix(monkeypatch):
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    stream = io.StringIO()
    assert tensorboard_missing(stream) is False
    assert "pip install 'pointnet-kit[tensorboard]'" in stream.getvalue()
    assert stream.getvalue().count("\n") == 1


def test_tensorboard_tags_are_grouped_by_split():
    from pointnet_kit.engine.trainer import tensorboard_tag

    assert tensorboard_tag("val_oa") == "val/oa"
    assert tensorboard_tag("val_instance_miou") == "val/instance_miou"
    assert tensorboard_tag("train_loss") == "train/loss"
    assert tensorboard_tag("lr") == "train/lr"


def test_next_steps_of_a_segmentation_run_speak_of_parts(tmp_path):
    text = next_steps(tmp_path / "parts", tensorboard=False, task="part_segmentation")
    assert "mIoU" in text and "viz parts" in text and "--category" in text
    assert "classify" not in text and "confusion" not in text
