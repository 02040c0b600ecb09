"""Every README code block meant to run is run here.

A block runs unless an HTML comment right above it says otherwise:
``<!-- test: skip (why) -->`` never (downloads, placeholders), ``<!-- test: slow -->`` only with
``-m slow``, ``<!-- ci: quickstart -->`` is run by ``.ci/run`` instead (it installs). ``text``
blocks are output, not code. Python blocks run as they are (in-process, fresh namespace); bash blocks run line by line, ``pointnet-kit``
being this checkout's CLI (in-process; through ``python -m pointnet_kit`` for lines with shell syntax), in a temporary folder, ``../shared/data``
pointed at the real data (``POINTNET_KIT_DATA``), and ``train`` kept tiny.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import shlex

import pytest

from pointnet_kit.cli.main import main
from tests.conftest import REPO_ROOT, SHARED_DATA

README = REPO_ROOT / "README.md"
BLOCK = re.compile(r"(?:<!--\s*(?P<tag>[^>]*?)\s*-->\s*\n)?```(?P<lang>\w*)\n(?P<code>.*?)```", re.S)
SHELL_SYNTAX = re.compile(r"[<>|&;$`]")
TINY_TRAIN = "train.epochs=1 data.num_points=32 train.batch_size=16 runtime.progress=false runtime.num_threads=1"


def readme_blocks() -> list:
    params = []
    text = README.read_text(encoding="utf-8")
    for match in BLOCK.finditer(text):
        lang, tag, code = match["lang"], (match["tag"] or "").strip(), match["code"]
        if lang not in ("python", "bash"):
            continue
        line = text.count("\n", 0, match.start("code"))
        marks = []
        if tag.startswith(("test: skip", "ci:")):
            marks.append(pytest.mark.skip(reason=f"README line {line}: {tag}"))
        elif tag.startswith("test: slow"):
            marks.append(pytest.mark.slow)
        params.append(pytest.param(lang, code, id=f"line{line}-{lang}", marks=marks))
    return params


def _env() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO_ROOT), MPLBACKEND="Agg")
    env["POINTNET_KIT_TEST_TRAIN"] = TINY_TRAIN
    return env


@pytest.mark.parametrize("lang, code", readme_blocks())
def test_readme_block(lang, code, tmp_path, monkeypatch, capsys):
    if "../shared/data" in code:
        if not SHARED_DATA.is_dir():
            pytest.skip(f"needs the real data at {SHARED_DATA}; point the tests at it with POINTNET_KIT_DATA=/path/to/shared/data")
        code = code.replace("../shared/data", str(SHARED_DATA))
    monkeypatch.chdir(tmp_path)
    if lang == "python":  # in this process (torch is imported once), in a fresh namespace
        exec(compile(code, f"README.md:{lang}", "exec"), {"__name__": "__readme__"})
        return
    for line in _commands(code):
        words = shlex.split(line, comments=True)
        if words[0] == "pointnet-kit" and not SHELL_SYNTAX.search(line.split("#")[0]):
            # a plain command: run it in this process (torch is imported once), exactly as the CLI does
            argv = words[1:] + (TINY_TRAIN.split() if words[1:2] == ["train"] else [])
            try:
                status = main(argv)
            except SystemExit as exc:  # --help / --version exit from argparse
                status = exc.code or 0
            out = capsys.readouterr()
            assert status == 0, f"README command failed: {line}\n--- stdout\n{out.out[-3000:]}\n--- stderr\n{out.err[-3000:]}"
        else:
            _run_in_bash(line, tmp_path)


def _commands(code: str) -> list[str]:
    return [line for line in code.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def _run_in_bash(line: str, cwd: Path) -> None:
    """A line with shell syntax (redirects, pipes): bash, with ``pointnet-kit`` mapped to this checkout."""
    prelude = (
        "set -euo pipefail\n"
        f'pointnet-kit() {{ if [ "${{1:-}}" = train ]; then {sys.executable} -m pointnet_kit "$@" '
        f'$POINTNET_KIT_TEST_TRAIN; else {sys.executable} -m pointnet_kit "$@"; fi; }}\n'
    )
    result = subprocess.run(["bash", "-c", prelude + line], cwd=cwd, env=_env(), capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, f"README command failed: {line}\n--- stdout\n{result.stdout[-3000:]}\n--- stderr\n{result.stderr[-3000:]}"


def test_every_runnable_block_is_collected():
    params = readme_blocks()
    assert len(params) >= 8
    run_by_default = [p for p in params if not p.marks]
    assert any(p.values[0] == "python" for p in run_by_default) and any(p.values[0] == "bash" for p in run_by_default)


def test_ci_runs_the_readme_quickstart():
    ci = (REPO_ROOT / ".ci" / "run").read_text()
    assert "<!-- ci: quickstart" in ci and "rm -rf .venv" in ci
    match = re.search(r"<!-- ci: quickstart[^>]*-->\s*```bash\n(.*?)```", README.read_text(), re.S)
    first, second = match.group(1).strip().splitlines()
    assert "python3 -m venv .venv && . .venv/bin/activate" in first and first.endswith("pointnet-kit train")
    assert second == "python -m pytest"
