"""scripts/bench_train.py and bench_infer.py --vs-reference: the JSON lines the issue's targets are read from."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
TINY = ["--vs-reference", "--batch-sizes", "4", "--num-points", "64", "--rounds", "2", "--threads-list", "1"]


def _run(script: str, *args: str) -> list[dict]:
    env = {k: v for k, v in os.environ.items() if k != "POINTNET_KIT_MALLOC"} | {"OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(SCRIPTS / script), *args], capture_output=True, text=True, check=True, env=env, timeout=300)
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def _check_ratio(summary: dict) -> None:
    assert set(summary) == {"median", "min", "max"} and 0 < summary["min"] <= summary["median"] <= summary["max"]


@pytest.mark.slow
def test_bench_train_vs_reference_prints_speedup_and_memory():
    (record,) = _run("bench_train.py", *TINY)
    assert record["bench"] == "train_vs_reference" and record["variant"] == "kit" and record["threads"] == 1
    _check_ratio(record["speedup_vs_reference"])
    assert set(record["speedup_vs_reference_by_port"]) == {"fxia22", "yanx27"}
    assert record["peak_memory_mb"] > 0 and all(v > 0 for v in record["reference_peak_memory_mb"].values())
    assert record["omp_wait_policy"] == os.environ.get("OMP_WAIT_POLICY", "PASSIVE")
    assert record["malloc"] == "system"  # the default: glibc's, for both sides


@pytest.mark.slow
def test_bench_infer_vs_reference_prints_speedup_agreement_and_memory():
    records = _run("bench_infer.py", *TINY, "--memory-batch", "8", "--memory-variants", "kit", "--malloc", "retained")
    kit = next(r for r in records if r["variant"] == "kit")
    assert kit["malloc"] == "retained"
    _check_ratio(kit["speedup_vs_reference"])
    assert kit["peak_memory_mb"] > 0 and kit["argmax_agreement_vs_plain_fp32"] == 1.0
    assert kit["max_abs_logit_diff_vs_plain_fp32"] < 1e-4 and 0 < kit["fraction_of_matmul_peak"]
