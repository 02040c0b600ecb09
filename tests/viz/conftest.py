"""Fixtures for the viz tests: a shared small renderer, known clouds, a trained-looking model, a CLI runner."""

from __future__ import annotations

import pytest
from .viz_helpers import perturbed_pointnet

from pointnet_kit.engine.checkpoint import save_checkpoint


@pytest.fixture(scope="session")
def renderer():
    """One small offscreen renderer for the whole session (skips only when this machine cannot render)."""
    from pointnet_kit.viz.render import Renderer, RenderError

    try:
        r = Renderer(96, 96, depth_cue=0.0)
    except RenderError as exc:  # pragma: no cover - CI installs the packages; see .ci/run and README "Quickstart"
        pytest.fail(f"offscreen rendering unavailable: {exc}")
    yield r
    r.close()


@pytest.fixture
def checkpoint(tmp_path):
    """A pointnet checkpoint for 3 classes (float32, non-trivial transforms) and its class names."""
    model = perturbed_pointnet(num_classes=3).float()
    names = ["cone", "cube", "sphere"]
    config = {"data": {"root": str(tmp_path / "data"), "num_points": 256, "val_fraction": 0.25, "split_seed": 0}}
    path = save_checkpoint(tmp_path / "run" / "checkpoint_best.pt", model, class_names=names, config=config)
    return path, names


@pytest.fixture
def cli(monkeypatch):
    """Run ``pointnet-kit`` in-process, with no display, and return its exit code (use ``capsys`` for output)."""
    from pointnet_kit.cli import main as cli_main

    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)

    def run(*argv):
        return cli_main.main([str(a) for a in argv])

    return run

