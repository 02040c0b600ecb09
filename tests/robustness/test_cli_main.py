"""The CLI error boundary (pointnet_kit/cli/main.py): one line on stderr and a documented exit code."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from pointnet_kit.cli import main as cli_main
from pointnet_kit.errors import DataError

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def boom(monkeypatch):
    """``main(["boom"])`` runs whatever the test puts in ``boom.action``."""

    class Holder:
        action = staticmethod(lambda: 0)

    def build_parser():
        parser = cli_main._Parser(prog="pointnet-kit")
        sub = parser.add_subparsers(dest="command", required=True)
        p = sub.add_parser("boom")
        p.add_argument("--n", type=int, default=0)
        p.set_defaults(func=lambda args: Holder.action())
        return parser

    monkeypatch.setattr(cli_main, "build_parser", build_parser)
    return Holder


def _raise(exc):
    def action():
        raise exc

    return action


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


@pytest.mark.parametrize(
    "exc, code, words",
    [
        (DataError("cloud.ply: truncated: the header says 10 vertices, the file holds 3"), 2, ["cloud.ply", "truncated"]),
        (PermissionError(errno.EACCES, "Permission denied", "/out/config.yaml"), 3, ["/out/config.yaml", "permission denied"]),
        (OSError(errno.EROFS, "Read-only file system", "/ro/run"), 3, ["/ro/run", "read-only"]),
        (OSError(errno.ENOSPC, "No space left on device", "/full/ckpt.pt"), 3, ["/full/ckpt.pt", "no space"]),
        (OSError(errno.EXDEV, "Invalid cross-device link", "/a", None, "/b"), 3, ["/a -> /b"]),
        (RuntimeError("[enforce fail at inline_container.cc:778] . PytorchStreamWriter failed writing file data/3"), 3, ["disk full"]),
        (MemoryError(), 3, ["out of memory"]),
        (KeyboardInterrupt(), 130, ["interrupted"]),
    ],
)
def test_expected_failures_are_one_line_with_their_code(boom, capsys, exc, code, words):
    boom.action = _raise(exc)
    assert cli_main.main(["boom"]) == code
    out, err = capsys.readouterr()
    lines = _lines(err)
    assert len(lines) == 1 and len(lines[0]) <= cli_main.MAX_MESSAGE, err
    assert all(w in lines[0].lower() for w in (w.lower() for w in words)), err
    assert "Traceback" not in err


def test_long_multiline_messages_are_clipped_to_one_line(boom, capsys):
    boom.action = _raise(DataError("f.off: bad line " + "x\n" * 20000))
    assert cli_main.main(["boom"]) == 2
    lines = _lines(capsys.readouterr().err)
    assert len(lines) == 1 and len(lines[0]) <= cli_main.MAX_MESSAGE and lines[0].endswith("...")


def test_unexpected_error_names_the_traceback_file(boom, capsys, tmp_path, monkeypatch):
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    boom.action = _raise(ZeroDivisionError("division by zero in a helper"))
    assert cli_main.main(["boom"]) == 1
    lines = _lines(capsys.readouterr().err)
    assert len(lines) == 1 and "ZeroDivisionError" in lines[0] and "--debug" in lines[0]
    (dump,) = tmp_path.glob("pointnet-kit-crash-*.txt")
    assert str(dump) in lines[0]
    text = dump.read_text()
    assert "Traceback (most recent call last)" in text and "division by zero in a helper" in text


@pytest.mark.parametrize("argv", [["--debug", "boom"], ["boom", "--debug"]])
def test_debug_re_raises(boom, argv):
    boom.action = _raise(DataError("x.npy: bad"))
    with pytest.raises(DataError):
        cli_main.main(argv)


def test_usage_error_is_one_line_exit_2(boom, capsys):
    with pytest.raises(SystemExit) as info:
        cli_main.main(["boom", "--n", "many"])
    assert info.value.code == 2
    lines = _lines(capsys.readouterr().err)
    assert len(lines) == 1 and "--n" in lines[0] and "--help" in lines[0]


def test_warnings_become_one_line(boom, capsys, monkeypatch):
    monkeypatch.delenv("PYTHONWARNINGS", raising=False)
    monkeypatch.setattr(warnings, "showwarning", warnings.showwarning)  # restored after the test

    def action():
        warnings.warn("a library says\nsomething on\nthree lines", UserWarning)
        return 0

    boom.action = action
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        assert cli_main.main(["boom"]) == 0
    lines = _lines(capsys.readouterr().err)
    assert lines == ["warning: UserWarning: a library says something on three lines"]


def test_invalid_xdg_runtime_dir_is_dropped(boom, monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "missing"))
    assert cli_main.main(["boom"]) == 0
    assert "XDG_RUNTIME_DIR" not in os.environ


def test_real_cli_unwritable_output_is_exit_3(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    mesh = tmp_path / "tetra.off"
    mesh.write_text("OFF\n4 4 0\n0 0 0\n1 0 0\n0 1 0\n0 0 1\n3 0 1 2\n3 0 1 3\n3 0 2 3\n3 1 2 3\n")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-m", "pointnet_kit", "data", "prepare", str(tmp_path), "--out", str(blocker / "out"),
         "--num-points", "8", "--workers", "1"],
        capture_output=True, text=True, env=env, timeout=120,
    )
    lines = _lines(proc.stderr)
    assert proc.returncode in (2, 3) and len(lines) == 1 and str(blocker) in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
