"""Real kill -9s of ``python -m pointnet_kit train`` (and ``data prepare``) at seeded random moments,
then a rerun: every artefact must equal an uninterrupted run's, bit for bit (CPU, one thread).

A trial launches the training in a subprocess, waits for a seeded trigger (a moment in an epoch, or a
temp file of an atomic write, i.e. during a checkpoint/metrics write), sends SIGKILL, checks what is on
disk right then, and recovers as a user would: ``train --resume RUN`` when the folder holds a run
config, else the original command again. The default suite makes a few kills, the slow one >= 20.
"""

from __future__ import annotations

import json
import math
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from pointnet_kit.cli.main import main
from pointnet_kit.engine.checkpoint import load_checkpoint

REPO_ROOT = Path(__file__).resolve().parents[2]
EPOCHS = 3
# The embedded dataset cut to two classes and 32 points, a narrow PointNet: ~1-2 s per epoch on one
# thread, checkpoints of ~35 MB (their writes last long enough to be hit by a kill).
TINY = [
    "data.num_points=32",
    "data.classes=[box,torus]",
    f"train.epochs={EPOCHS}",
    "train.batch_size=40",
    "model.kwargs.global_dim=256",
    "runtime.device=cpu",
    "runtime.num_threads=1",
    "runtime.progress=false",
    "runtime.tensorboard=false",
]
TIMING_KEYS = {"train_seconds", "shapes_per_s", "wall_time_s", "train_shapes_per_s"}


def train_args(out: Path) -> list[str]:
    return ["train", "--out", str(out), *TINY]


def recovery_args(run: Path) -> list[str]:
    """What a user reruns after a crash: --resume once the run has its config, else the command again."""
    from pointnet_kit.engine.trainer import is_run_dir

    return ["train", "--resume", str(run)] if is_run_dir(run) else train_args(run)


def spawn(args: list[str], cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "pointnet_kit", *args], cwd=cwd, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def kill_at(proc: subprocess.Popen, folder: Path, trigger: tuple[str, float], timeout: float = 300) -> bool:
    """SIGKILL ``proc`` at ``trigger``; False if it finished first.

    ``("tmp", k)``: when the k-th temp file of an atomic write appears in ``folder`` (mid-write);
    ``("best", k)``: when the k-th temp file of ``checkpoint_best.pt`` appears (last is written, best not);
    ``("epoch", x)``: x epochs into training (epoch i + fraction, epoch length taken from epoch 1);
    ``("start", s)``: s seconds after launch (during imports, data loading or the first epoch).
    """
    kind, value = trigger
    start, seen, first_epoch_at, epoch_len = time.monotonic(), set(), None, None
    while proc.poll() is None:
        now = time.monotonic()
        if now - start > timeout:
            proc.kill()
            raise AssertionError(f"training did not finish in {timeout} s")
        if kind == "start" and now - start >= value:
            break
        try:
            names = [e.name for e in os.scandir(folder)]
        except FileNotFoundError:
            names = []
        if kind in ("tmp", "best"):
            prefix = ".checkpoint_best.pt." if kind == "best" else "."
            seen.update(n for n in names if n.startswith(prefix) and n.endswith(".tmp"))
            if len(seen) >= value:
                break
        elif kind == "epoch":
            if first_epoch_at is None and "config.yaml" in names:
                first_epoch_at = now
            if epoch_len is None and "checkpoint_last.pt" in names:
                epoch_len = max(now - first_epoch_at, 0.2)
            if first_epoch_at is not None and epoch_len is not None and now - first_epoch_at >= value * epoch_len:
                break
            if first_epoch_at is not None and epoch_len is None and value < 1 and now - first_epoch_at >= value * 2.0:
                break  # inside epoch 1, whose length is not known yet: ~2 s
        time.sleep(0.0005 if kind in ("tmp", "best") else 0.005)
    if proc.poll() is not None:
        return False
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return True


def random_trigger(rng: random.Random) -> tuple[str, float]:
    kind = rng.choice(["tmp", "tmp", "best", "epoch", "epoch", "start"])
    if kind == "tmp":  # config, then per epoch metrics, last, (best); summary at the end
        return kind, rng.randint(1, 3 * EPOCHS + 2)
    if kind == "best":  # the tiny run improves every epoch
        return kind, rng.randint(1, EPOCHS)
    if kind == "epoch":
        return kind, rng.uniform(0.0, EPOCHS + 0.3)
    return kind, rng.uniform(0.5, 8.0)


# --- comparing runs ---------------------------------------------------------------------------------


def same(a: Any, b: Any, where: str = "") -> list[str]:
    """Where ``a`` and ``b`` differ (tensors bit for bit), timing fields skipped."""
    if isinstance(a, dict) and isinstance(b, dict):
        if set(a) != set(b):
            return [f"{where}: keys {sorted(set(a) ^ set(b))}"]
        return [d for k in a if k not in TIMING_KEYS for d in same(a[k], b[k], f"{where}.{k}")]
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        if len(a) != len(b):
            return [f"{where}: length {len(a)} != {len(b)}"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in same(x, y, f"{where}[{i}]")]
    if torch.is_tensor(a) and torch.is_tensor(b):
        ok = a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
        return [] if ok else [f"{where}: tensors differ"]
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return []
    return [] if a == b else [f"{where}: {a!r} != {b!r}"]


def differences(run: Path, ref: Path) -> list[str]:
    """Every way ``run``'s artefacts differ from ``ref``'s (files present, config, metrics, summary, checkpoints)."""
    names = sorted(p.name for p in run.iterdir())
    if names != sorted(p.name for p in ref.iterdir()):
        return [f"files {names}"]
    diffs = [] if (run / "config.yaml").read_text() == (ref / "config.yaml").read_text() else ["config.yaml"]
    read_lines = lambda p: [json.loads(x) for x in p.read_text().splitlines()]  # noqa: E731
    diffs += same(read_lines(run / "metrics.jsonl"), read_lines(ref / "metrics.jsonl"), "metrics.jsonl")
    diffs += same(json.loads((run / "summary.json").read_text()), json.loads((ref / "summary.json").read_text()), "summary")
    for name in ("checkpoint_last.pt", "checkpoint_best.pt"):
        diffs += same(load_checkpoint(run / name), load_checkpoint(ref / name), name)
    return diffs


def consistent_now(run: Path) -> list[str]:
    """What must hold at any moment, even right after a kill: best is never ahead of last; it lags only
    when last's epoch is best's (resume copies it); a summary names the epoch best holds."""
    problems = []
    last = load_checkpoint(run / "checkpoint_last.pt") if (run / "checkpoint_last.pt").exists() else None
    best = load_checkpoint(run / "checkpoint_best.pt") if (run / "checkpoint_best.pt").exists() else None
    if last is not None:
        recorded = last["best"]["epoch"]
        held = best["epoch"] if best is not None else None
        if held != recorded and recorded != last["epoch"]:
            problems.append(f"last records best epoch {recorded}, checkpoint_best.pt holds {held}")
    if (run / "summary.json").exists():
        summary = json.loads((run / "summary.json").read_text())
        if best is None or summary["best"]["epoch"] != best["epoch"]:
            problems.append("summary.json names another best epoch than checkpoint_best.pt holds")
    return problems


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """One uninterrupted run per session (in-process: the same code path as the CLI, minus the imports)."""
    out = tmp_path_factory.mktemp("kill") / "reference"
    assert main(train_args(out)) == 0
    return out


def kill_and_recover(reference: Path, folder: Path, rng: random.Random, max_kills: int = 1) -> list[str]:
    """Kill the training (and maybe the recoveries) up to ``max_kills`` times, then finish it; what each
    kill hit (the temp files it orphaned, i.e. the writes it interrupted, or the files present)."""
    run = folder / "run"
    kills, args = [], train_args(run)
    for _ in range(max_kills):
        proc = spawn(args, folder)
        trigger = random_trigger(rng)
        try:
            if not kill_at(proc, run, trigger):
                assert proc.returncode == 0, proc.stderr.read().decode()
                break
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stderr.close()
        names = sorted(p.name for p in run.iterdir()) if run.exists() else []
        orphans = [n.split(".")[1] for n in names if n.endswith(".tmp")]
        kills.append(f"{trigger[0]} {trigger[1]:.2f}: " + (f"mid-write of {', '.join(orphans)}" if orphans else f"files {names}"))
        if run.exists():
            assert not consistent_now(run), consistent_now(run)
        args = recovery_args(run)
    else:
        assert main(args) == 0  # the last recovery, in-process (saves the imports)
    diffs = differences(run, reference)
    return [f"{k} -> {'identical' if not diffs else f'DIFFERS: {diffs[:3]}'}" for k in kills]


def test_kills_during_a_checkpoint_write_and_mid_epoch_then_resume_give_the_uninterrupted_run(reference, tmp_path):
    # Two fixed triggers: inside epoch 2's checkpoint_best.pt write (after last's: best must be
    # repaired from last on resume), and halfway through epoch 2.
    kills = 0
    for i, trigger in enumerate([("best", 2), ("epoch", 1.5)]):
        folder = tmp_path / str(i)
        folder.mkdir()
        proc = spawn(train_args(folder / "run"), folder)
        try:
            assert kill_at(proc, folder / "run", trigger)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stderr.close()
        kills += 1
        run = folder / "run"
        assert not consistent_now(run), consistent_now(run)
        if trigger[0] == "best":  # killed while writing best after last (unless the write beat the kill)
            assert load_checkpoint(run / "checkpoint_last.pt")["epoch"] == 2
            assert load_checkpoint(run / "checkpoint_best.pt")["epoch"] in (1, 2)
        assert main(recovery_args(run)) == 0
        assert not differences(run, reference), differences(run, reference)
    assert kills == 2


@pytest.mark.slow
def test_twenty_random_kills_then_resume_give_the_uninterrupted_run(reference, tmp_path):
    rng = random.Random(20_251_201)
    kills: list[str] = []
    trials = 0
    while len(kills) < 20 and trials < 40:
        folder = tmp_path / f"trial{trials}"
        folder.mkdir()
        kills += kill_and_recover(reference, folder, rng, max_kills=rng.choice([1, 1, 2]))
        trials += 1
    good = sum(k.endswith("identical") for k in kills)
    print(f"\n{good}/{len(kills)} kills (in {trials} trials) ended with every artefact identical to the uninterrupted run:")
    print("\n".join(kills))
    assert len(kills) >= 20 and good == len(kills)


# --- data prepare -----------------------------------------------------------------------------------


def _write_off_tree(src: Path, seed: int = 0) -> None:
    """Two classes of small meshes (boxes, ico-spheres) of random proportions in <class>/<split>/*.off."""
    import numpy as np
    import trimesh

    rng = np.random.default_rng(seed)
    for name, make in (("box", lambda: trimesh.creation.box()), ("ball", lambda: trimesh.creation.icosphere(2))):
        for split, count in (("train", 24), ("test", 8)):
            (src / name / split).mkdir(parents=True)
            for i in range(count):
                mesh = make()
                mesh.apply_scale(rng.uniform(0.3, 2.0, 3))
                mesh.export(src / name / split / f"{name}_{i:04d}.off")


def _prepared(out: Path) -> dict[str, Any]:
    """A prepared folder's content: file names, text files, HDF5 arrays, the report minus timings."""
    import h5py

    content: dict[str, Any] = {"files": sorted(p.name for p in out.iterdir())}
    for path in sorted(out.iterdir()):
        if path.suffix == ".h5":
            with h5py.File(path, "r") as f:
                content[path.name] = {k: torch.from_numpy(f[k][()]) for k in f}
        elif path.name == "prepare_report.json":
            report = json.loads(path.read_text())
            content[path.name] = {k: v for k, v in report.items() if not k.startswith(("seconds", "shapes_per_second"))}
        else:
            content[path.name] = path.read_text()
    return content


@pytest.mark.slow
def test_kill_during_data_prepare_then_rerun_gives_the_same_output(tmp_path):
    src = tmp_path / "src"
    _write_off_tree(src)
    args = lambda out: ["data", "prepare", str(src), "--out", str(out), "--num-points", "1024", "--workers", "1"]  # noqa: E731
    assert main(args(tmp_path / "reference")) == 0
    reference = _prepared(tmp_path / "reference")
    rng = random.Random(7)
    hits = []
    for trial in range(8):
        folder = tmp_path / f"trial{trial}"
        folder.mkdir()
        proc = spawn(args(folder / "out"), folder)
        # Half the kills at a random moment after launch (imports, sampling), half within 20 ms of the
        # first entry appearing in the folder (the output or its temp build: the writes and the swap).
        at_write = trial % 2 == 1
        deadline = None if at_write else time.monotonic() + rng.uniform(0.5, 6.0)
        try:
            while proc.poll() is None:
                if at_write and deadline is None and any(folder.iterdir()):
                    deadline = time.monotonic() + rng.uniform(0.0, 0.02)
                if deadline is not None and time.monotonic() >= deadline:
                    proc.send_signal(signal.SIGKILL)
                    proc.wait()
                    hits.append(sorted(p.name for p in folder.iterdir()))
                    break
                time.sleep(0.0005)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stderr.close()
        assert main(args(folder / "out")) == 0, f"trial {trial}: rerun after the kill failed"
        assert not same(_prepared(folder / "out"), reference), f"trial {trial}: {same(_prepared(folder / 'out'), reference)}"
        assert sorted(p.name for p in folder.iterdir()) == ["out"], "temp folders left behind"
    print(f"\n{len(hits)} kills; folder contents at each kill: {hits}")
    assert len(hits) >= 4
