"""pointnet-kit data {download,prepare,info}: exit codes and what the user reads."""

from __future__ import annotations

import json
import socket

import pytest

from pointnet_kit.cli import main as cli

TETRA = "OFF4 4 0\n0 0 0\n1 0 0\n0 1 0\n0 0 1\n3 0 2 1\n3 0 1 3\n3 0 3 2\n3 1 2 3\n"


@pytest.fixture
def run(monkeypatch, capsys):
    """Run the CLI with only the data commands registered (other areas' modules are not needed)."""
    monkeypatch.setattr(cli, "COMMAND_MODULES", ["pointnet_kit.cli.data"])

    def _run(*argv: str) -> tuple[int, str, str]:
        code = cli.main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return code, out, err

    return _run


@pytest.fixture
def flat_meshes(tmp_path):
    folder = tmp_path / "meshes"
    folder.mkdir()
    for name in ("cone_0001", "cone_0002", "desk_0001"):
        (folder / f"{name}.off").write_text(TETRA)
    (folder / "desk_0002.off").write_text("OFF\n4 4 0\n0 0 0\n")
    return folder


def test_help_for_every_subcommand(run):
    for argv in (["data", "--help"], ["data", "download", "--help"], ["data", "prepare", "--help"], ["data", "info", "--help"]):
        with pytest.raises(SystemExit) as exit_info:
            run(*argv)
        assert exit_info.value.code == 0


def test_prepare_then_info(run, flat_meshes, tmp_path):
    out = tmp_path / "prepared"
    code, text, _ = run("data", "prepare", flat_meshes, "--out", out, "--num-points", 64, "--workers", 1, "--split", "test")
    assert code == 0
    assert "prepared 3 of 4 meshes" in text and "(test 3; 2 classes)" in text
    assert "skipped desk_0002.off:" in text and "truncated" in text
    report = json.loads((out / "prepare_report.json").read_text())
    assert report["skipped"][0]["file"] == "desk_0002.off" and report["splits"] == {"test": 3}
    code, text, _ = run("data", "info", out)
    assert code == 0 and "hdf5 dataset, 2 classes" in text and "test: 3 shapes, 64 points per shape, no normals" in text
    assert "skipped when prepared: 1 file(s)" in text
    code, text, _ = run("data", "info", out, "--json")
    info = json.loads(text)
    assert info["classes"] == ["cone", "desk"] and info["splits"]["test"]["per_class"] == {"cone": 2, "desk": 1}


def test_info_on_embedded_and_bad_folder(run, tmp_path, monkeypatch):
    from pointnet_kit.data import synthetic

    monkeypatch.setattr(synthetic, "SHAPES_PER_CLASS", {"train": 2, "test": 1})
    monkeypatch.setattr(synthetic, "VERSION", "cli-test")
    code, text, _ = run("data", "info", "default", "--json")
    assert code == 0 and json.loads(text)["num_classes"] == len(synthetic.CLASS_NAMES)
    code, _, err = run("data", "info", tmp_path / "nowhere")
    assert code == 2 and err.startswith("error: ") and "no such folder" in err and "Traceback" not in err


def test_prepare_errors_are_one_line(run, tmp_path):
    (tmp_path / "empty").mkdir()
    code, _, err = run("data", "prepare", tmp_path / "empty", "--out", tmp_path / "o")
    assert code == 2 and "no .off files found" in err
    code, _, err = run("data", "prepare", tmp_path / "empty", "--out", tmp_path / "o", "--num-points", 0)
    assert code == 2 and "--num-points" in err


def test_download_offline_exits_nonzero_with_instructions(run, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code, _, err = run("data", "download", "modelnet10", "--root", tmp_path, "--url", f"http://127.0.0.1:{port}/ModelNet10.zip", "--timeout", 5)
    assert code == 2 and "cannot connect" in err and "by hand" in err and str(tmp_path / "ModelNet10") in err
