"""What a pip user gets: the configs, the type marker and the licence inside the wheel."""

from __future__ import annotations

import subprocess
import sys
import zipfile

import pytest

from pointnet_kit.engine.config import CONFIG_DIR, list_configs
from tests.conftest import REPO_ROOT


def test_top_level_configs_is_the_packaged_folder():
    assert (REPO_ROOT / "configs").resolve() == CONFIG_DIR.resolve()
    assert (REPO_ROOT / "pointnet_kit" / "py.typed").is_file()
    assert "MIT License" in (REPO_ROOT / "LICENSE").read_text()


def test_version_without_torch():
    code = "import sys, pointnet_kit; print(pointnet_kit.__version__, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO_ROOT).stdout
    version, torch_loaded = out.split()
    assert version.count(".") == 2 and torch_loaded == "False"


@pytest.mark.slow  # builds the wheel (~10-30 s)
def test_wheel_ships_configs_typing_marker_and_licence(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(REPO_ROOT), "--no-deps", "-q", "-w", str(tmp_path)],
        check=True, capture_output=True,
    )
    (wheel,) = tmp_path.glob("pointnet_kit-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {f"pointnet_kit/configs/{n}.yaml" for n in list_configs()} <= names
    assert "pointnet_kit/py.typed" in names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
