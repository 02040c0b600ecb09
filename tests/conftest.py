"""Shared fixtures: where the real data lives, and GPU skipping."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
# One thread per test process: the suite's tensors are small, and two threads on two busy cores
# spend more time waiting on each other than computing.
torch.set_num_threads(1)

SHARED_DATA = Path(os.environ.get("POINTNET_KIT_DATA", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real ModelNet data beside the project; skip when absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA}; point the tests at it with POINTNET_KIT_DATA=/path/to/shared/data")
    return SHARED_DATA


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)
