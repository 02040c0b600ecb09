"""Shared helpers for the benchmark scripts: timing, memory, device description."""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import time
from typing import Callable

import torch

from pointnet_kit.allocator import ENV_VAR as MALLOC_ENV_VAR
from pointnet_kit.allocator import retain_freed_memory


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(fn: Callable[[], object], device: torch.device, steps: int, warmup: int) -> float:
    """Mean seconds per call after ``warmup`` untimed calls (GPU synchronized)."""
    for _ in range(warmup):
        fn()
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    sync(device)
    return (time.perf_counter() - start) / steps


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB -> MiB (process peak RSS)


def device_info(device: torch.device) -> dict:
    return {
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default"),
        "malloc": malloc_mode(),
        "torch": str(torch.__version__),
    }


def dtype_label(device: torch.device, amp: str) -> str:
    """What the autocast setting means on ``device`` (``auto``: see engine.inference.resolve_amp)."""
    from pointnet_kit.engine.inference import resolve_amp

    amp = resolve_amp(device, amp)
    return {"bf16": "bf16 autocast", "fp16": "fp16 autocast"}.get(amp, "float32")


def add_malloc_option(parser: argparse.ArgumentParser) -> None:
    """``--malloc system|retained``: glibc's defaults (a plain Python process, the reference's users),
    or freed memory kept for reuse as the ``pointnet-kit`` command line sets it. One process: it applies
    to both sides of a comparison."""
    parser.add_argument(
        "--malloc",
        choices=["system", "retained"],
        default="retained" if os.environ.get(MALLOC_ENV_VAR) == "retained" else "system",  # subprocesses follow
        help="system: glibc's defaults; retained: freed memory kept for reuse, as the pointnet-kit command line "
        "runs (pointnet_kit/allocator.py). It applies to both sides of a comparison",
    )


def apply_malloc(args: argparse.Namespace) -> None:
    """Apply ``--malloc`` to this process and (through the environment) to the subprocesses it starts."""
    os.environ[MALLOC_ENV_VAR] = args.malloc
    if args.malloc == "retained" and not retain_freed_memory():
        raise SystemExit("--malloc retained needs glibc's mallopt (Linux)")


def malloc_mode() -> str:
    """What the JSON records say about the allocator: ``retained`` or ``system``."""
    return os.environ.get(MALLOC_ENV_VAR, "system")


def base_parser(doc: str, batch_sizes: list[int], steps: int, warmup: int) -> argparse.ArgumentParser:
    """The options every benchmark shares."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="pointnet")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=batch_sizes)
    parser.add_argument("--num-points", type=int, default=1024)
    parser.add_argument("--amp", default="auto", choices=["auto", "bf16", "fp16", "off"])
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--steps", type=int, default=steps)
    parser.add_argument("--warmup", type=int, default=warmup)
    parser.add_argument("--threads", type=int, default=None)
    add_malloc_option(parser)
    return parser


def setup(args: argparse.Namespace) -> torch.device:
    """Apply ``--threads`` and pick the device (cuDNN autotuning on CUDA)."""
    from pointnet_kit.utils import resolve_device

    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    return device


def measure(kind: str, step: Callable[[], object], device: torch.device, settings: dict) -> dict:
    """Time ``step`` and return the benchmark's JSON record.

    ``settings`` holds ``model``, ``amp``, ``compile``, ``batch``, ``points``, ``steps`` and ``warmup``.
    """
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    seconds = time_call(step, device, settings["steps"], settings["warmup"])
    return {
        "bench": kind,
        "model": settings["model"],
        **device_info(device),
        "dtype": dtype_label(device, settings["amp"]),
        "compile": settings["compile"],
        "batch": settings["batch"],
        "points": settings["points"],
        "shapes_per_s": round(settings["batch"] / seconds, 1),
        "ms_per_step": round(seconds * 1000, 3),
        "peak_memory_mb": round(peak_memory_mb(device), 1),
    }


# --- interleaved comparisons -----------------------------------------------------------------------


def interleave(steps: dict[str, Callable[[], object]], rounds: int, warmup: int) -> dict[str, list[float]]:
    """Seconds per call of each step, timed A B C A B C ... in this process.

    On a shared machine the load changes from second to second; interleaving exposes every variant
    to the same load, so the per-round ratios are fair even when the absolute times wander.
    """
    for _ in range(warmup):
        for step in steps.values():
            step()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - start)
    return times


def ratio_summary(slow: list[float], fast: list[float]) -> dict[str, float]:
    """Per-round ratios ``slow / fast`` (how many times faster ``fast`` is): median, min, max."""
    ratios = [s / f for s, f in zip(slow, fast)]
    return {"median": round(statistics.median(ratios), 3), "min": round(min(ratios), 3), "max": round(max(ratios), 3)}


def median_ms(times: list[float]) -> float:
    return round(statistics.median(times) * 1000, 2)


def matmul_gflops(dtype: torch.dtype, size: int = 2048, repeats: int = 5) -> float:
    """Measured throughput of one big square matmul (median of ``repeats``), GFLOP/s."""
    a = torch.randn(size, size).to(dtype)
    b = torch.randn(size, size).to(dtype)
    torch.mm(a, b)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        times.append(time.perf_counter() - start)
    return 2 * size**3 / statistics.median(times) / 1e9
