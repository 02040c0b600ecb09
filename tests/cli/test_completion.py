"""``pointnet-kit completion bash``: the script completes subcommands, options and files."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from pointnet_kit.cli.completion import bash_script, command_table
from pointnet_kit.cli.main import build_parser, main


def test_table_covers_every_command():
    table = command_table(build_parser())
    assert {"train", "eval", "config", "config show", "data prepare", "completion"} <= set(table)
    assert "--votes" in table["eval"][0]
    assert table["config"][1] is False and table["predict"][1] is True


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_bash_completes(tmp_path, capsys):
    assert main(["completion", "bash"]) == 0
    script = tmp_path / "c.sh"
    script.write_text(capsys.readouterr().out)
    probe = f"""source {script}
t() {{ COMP_WORDS=("$@"); COMP_CWORD=$(( ${{#COMP_WORDS[@]}} - 1 )); _pointnet_kit; echo "${{COMPREPLY[*]}}"; }}
t pointnet-kit con
t pointnet-kit config s
t pointnet-kit eval runs/x --vo
"""
    out = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, check=True, cwd=tmp_path).stdout
    assert out.splitlines() == ["config", "show", "--votes"]
    assert bash_script(build_parser()).rstrip().endswith("complete -o filenames -F _pointnet_kit pointnet-kit")
