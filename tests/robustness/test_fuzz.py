"""Fuzz: seeded corpora of damaged files through the readers (in-process) and the CLI (subprocesses
under a memory limit): never a traceback, a signal or a hang; damaged files that a strict reader can
always detect are refused with exit 2 and one line.

The default suite runs a small sample; ``-m slow`` runs a few hundred files per format. For a fresh,
untuned corpus: ``python -m tests.robustness.test_fuzz --seed N --per-format K --cli K2``.
"""

from __future__ import annotations

import collections
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from pointnet_kit.data.io import load_points
from pointnet_kit.errors import DataError
from tests.robustness.fuzz_corpus import FORMATS, SUFFIX, Case, corpus, valid_file

REPO = Path(__file__).resolve().parents[2]
MEMORY_LIMIT = 3 << 30  # address space of each CLI child
CLI_TIMEOUT = 120.0  # wall seconds per CLI run (generous: the machine is shared); CPU time is asserted separately
CLI_CPU_LIMIT = 20.0  # CPU seconds per CLI run (interpreter + torch import included)


def read_case(path: Path, case: Case) -> str:
    """``"refused"``, ``"accepted"`` or ``"crash: ..."`` for one damaged file read in-process."""
    try:
        out = load_points(path, 64, seed=0)
    except DataError as exc:
        message = str(exc)
        if "\n" in message or len(message) > 300 or str(path) not in message:
            return f"crash: bad message {message[:120]!r}"
        return "refused"
    except Exception as exc:  # noqa: BLE001 - anything else is a failure of the reader
        return f"crash: {type(exc).__name__}: {str(exc)[:160]}"
    if not np.isfinite(out).all():
        return "crash: non-finite points returned"
    return "accepted"


def run_reader_corpus(cases: list[Case], folder: Path) -> tuple[collections.Counter, list[str]]:
    counts: collections.Counter = collections.Counter()
    failures = []
    for case in cases:
        path = folder / case.name
        path.write_bytes(case.data)
        start = time.perf_counter()
        outcome = read_case(path, case)
        seconds = time.perf_counter() - start
        if outcome == "accepted" and case.must_refuse:
            outcome = "crash: accepted a file that must be refused"
        if seconds > 5:
            outcome = f"crash: took {seconds:.1f} s"
        key = outcome.split(":")[0] if outcome.startswith("crash") else f"{outcome}{'' if case.must_refuse else ' (may)'}"
        counts[key] += 1
        if outcome.startswith("crash"):
            failures.append(f"{case.name}: {outcome}")
    return counts, failures


def _limit_memory() -> None:  # runs in the child before exec
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def run_cli(args: list[str], cwd: Path) -> dict:
    """Run ``python -m pointnet_kit ARGS`` under the memory limit: return code, stderr lines, CPU and wall time."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), "PYTHONFAULTHANDLER": "1"}
    env.pop("POINTNET_KIT_DEBUG", None)
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "pointnet_kit", *args], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, preexec_fn=_limit_memory)
    try:
        out, err = proc.communicate(timeout=CLI_TIMEOUT)
        timed_out = False
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        timed_out = True
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # cumulative: the caller takes differences
    text = err.decode(errors="replace")
    return {"code": proc.returncode, "stderr": text, "lines": [x for x in text.splitlines() if x.strip()],
            "stdout": out.decode(errors="replace"), "wall": time.perf_counter() - start, "timed_out": timed_out,
            "cpu_total": usage.ru_utime + usage.ru_stime}


def judge_cli(result: dict, case: Case) -> str:
    """``refused`` / ``accepted`` / a failure description for one CLI run on one damaged file."""
    if result["timed_out"]:
        return "timeout"
    if result["code"] < 0:
        return f"signal {-result['code']}"
    if "Traceback" in result["stderr"] or result["code"] == 1:
        return "traceback"
    if result["code"] == 0:
        if "nan" in result["stdout"].lower().split():
            return "nan answer"
        return "exit-0 on must-refuse" if case.must_refuse else "accepted"
    if result["code"] != 2 or len(result["lines"]) != 1 or len(result["lines"][0]) > 300:
        return f"exit {result['code']} with {len(result['lines'])} stderr lines"
    return "refused"


def cli_commands(case: Case, path: Path, checkpoint: Path, work: Path) -> list[tuple[str, list[str]]]:
    commands = [("predict", ["predict", str(checkpoint), str(path)]),
                ("viz cloud", ["viz", "cloud", str(path), "--out", str(work / "out.png"), "--size", "64"])]
    if case.fmt == "off":  # data prepare reads folders of .off meshes: one broken mesh alone in a folder
        folder = work / f"prep_{path.stem}"
        folder.mkdir(exist_ok=True)
        (folder / path.name).write_bytes(case.data)
        commands.append(("data prepare", ["data", "prepare", str(folder), "--out", str(work / f"prepared_{path.stem}"),
                                          "--num-points", "32", "--workers", "1"]))
    return commands


def make_checkpoint(path: Path) -> Path:
    """A tiny untrained PointNet checkpoint with 3 classes and 64 points (what ``predict`` needs)."""
    from pointnet_kit import create_model
    from pointnet_kit.engine.checkpoint import save_checkpoint
    from pointnet_kit.engine.config import config_from_dict

    config = config_from_dict({"data": {"num_points": 64}})
    save_checkpoint(path, create_model("pointnet", num_classes=3, seed=0), class_names=["a", "b", "c"],
                    config=config.to_dict())
    return path


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.pt")


def test_valid_files_of_every_format_load(tmp_path):
    rng = np.random.default_rng(0)
    for fmt in FORMATS:
        path = tmp_path / f"valid_{fmt}.{SUFFIX.get(fmt, fmt)}"
        path.write_bytes(valid_file(fmt, rng))
        points = load_points(path, 64)
        assert points.shape == (64, 3) and np.isfinite(points).all(), fmt


def test_reader_fuzz_small(tmp_path):
    cases = corpus(seed=101, per_format=40)
    counts, failures = run_reader_corpus(cases, tmp_path)
    assert not failures, "\n".join(failures[:20])
    assert counts["refused"] >= sum(c.must_refuse for c in cases) > len(cases) // 2


@pytest.mark.slow
def test_reader_fuzz_large(tmp_path):
    counts, failures = run_reader_corpus(corpus(seed=7, per_format=300), tmp_path)
    assert not failures, "\n".join(failures[:20])


def _cli_sample(seed: int, n: int) -> list[Case]:
    """``n`` must-refuse cases spread over formats and damages (plus OFF for data prepare)."""
    cases = [c for c in corpus(seed, per_format=7) if c.must_refuse]
    rng = np.random.default_rng(seed)
    # a quarter OFF meshes (the only format `data prepare` reads), the rest drawn from every format
    picks = [c for c in cases if c.fmt == "off"][: max(1, n // 4)] + list(rng.permutation(np.array(cases, dtype=object)))
    seen, out = set(), []
    for c in picks:
        if c.name not in seen:
            seen.add(c.name)
            out.append(c)
    return out[:n]


def run_cli_corpus(cases: list[Case], checkpoint: Path, work: Path) -> tuple[collections.Counter, list[str], float]:
    counts: collections.Counter = collections.Counter()
    failures, worst_cpu = [], 0.0
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_before = cpu_before.ru_utime + cpu_before.ru_stime
    for case in cases:
        path = work / case.name
        path.write_bytes(case.data)
        for command, args in cli_commands(case, path, checkpoint, work):
            result = run_cli(args, work)
            cpu, cpu_before = result["cpu_total"] - cpu_before, result["cpu_total"]
            worst_cpu = max(worst_cpu, cpu)
            verdict = judge_cli(result, case)
            if verdict == "refused" and cpu > CLI_CPU_LIMIT:
                verdict = f"slow ({cpu:.1f} CPU s)"
            counts[f"{command}: {verdict}"] += 1
            if verdict not in ("refused", "accepted"):
                failures.append(f"{command} {case.name}: {verdict}: {result['stderr'][-300:]!r}")
    return counts, failures, worst_cpu


def test_cli_fuzz_subprocess(tmp_path, checkpoint):
    """One damaged file through ``predict`` as a real subprocess under the memory limit (the torch import
    dominates: ~2 CPU s); the slow test runs every command on many files."""
    (case,) = _cli_sample(seed=202, n=1)
    path = tmp_path / case.name
    path.write_bytes(case.data)
    result = run_cli(["predict", str(make_checkpoint(tmp_path / "c.pt")), str(path)], tmp_path)
    assert judge_cli(result, case) == "refused", result["stderr"]
    assert str(path) in result["lines"][0]


def test_cli_fuzz_in_process(tmp_path, checkpoint, capsys):
    """More damaged files through the CLI's main() (same error boundary, no interpreter start-up)."""
    from pointnet_kit.cli.main import main

    for case in _cli_sample(seed=303, n=12):
        path = tmp_path / case.name
        path.write_bytes(case.data)
        for command, args in cli_commands(case, path, checkpoint, tmp_path):
            code = main(args)
            err = capsys.readouterr().err
            lines = [x for x in err.splitlines() if x.strip()]
            assert code == 2 and len(lines) == 1 and "Traceback" not in err, f"{command} {case.name}: {code} {err!r}"


@pytest.mark.slow
def test_cli_fuzz_large(tmp_path, checkpoint):
    counts, failures, _ = run_cli_corpus(_cli_sample(seed=404, n=40), checkpoint, tmp_path)
    assert not failures, "\n".join(failures[:20])


def main(argv: list[str] | None = None) -> int:
    """Run a fresh corpus and print the counts (for reports): readers, then a CLI sample."""
    import argparse
    import tempfile

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--per-format", type=int, default=300)
    parser.add_argument("--cli", type=int, default=30, help="damaged files run through each CLI command")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="pointnet-kit-fuzz-"))
    cases = corpus(args.seed, args.per_format)
    start = time.perf_counter()
    counts, failures = run_reader_corpus(cases, work)
    print(f"readers: {len(cases)} files in {time.perf_counter() - start:.1f} s: {dict(counts)}")
    for line in failures[:20]:
        print("  ", line)
    if args.cli:
        checkpoint = make_checkpoint(work / "tiny.pt")
        counts, failures, worst = run_cli_corpus(_cli_sample(args.seed, args.cli), checkpoint, work)
        print(f"cli: {dict(sorted(counts.items()))}; worst CPU per run {worst:.1f} s")
        for line in failures[:20]:
            print("  ", line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
