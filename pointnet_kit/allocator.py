"""Keep freed memory in the process (glibc), so big CPU tensors stop costing page faults.

glibc's ``malloc`` serves every block above a threshold (at most 32 MiB) with a fresh ``mmap`` and
returns it to the system on ``free``. A PointNet++ training step allocates and frees tensors of
67-134 MB dozens of times, so every step faults all of that memory in again, page by page: on this
project's CPU that was 35-45% of the step (a 16-cloud PointNet++ SSG training step took 1.8-2.5 s
with the memory kept against 2.9-3.6 s without, in back-to-back runs). Serving all blocks from the
heap and never trimming it lets later steps reuse the pages; the process keeps its peak memory
until it exits (what PyTorch's CUDA caching allocator does on the GPU, and what jemalloc or
tcmalloc preloaded would give on CPU).

The command line calls :func:`retain_freed_memory` once at start; ``POINTNET_KIT_MALLOC=system``
leaves glibc's defaults. Elsewhere than Linux with glibc it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

ENV_VAR = "POINTNET_KIT_MALLOC"
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_NEVER_TRIM = 2**31 - 1  # mallopt takes an int


def retain_freed_memory() -> bool:
    """Tell glibc to serve large blocks from the heap and never give it back; True when it took effect.

    No-op (False) when ``POINTNET_KIT_MALLOC=system`` or where glibc's ``mallopt`` is unavailable.
    """
    if os.environ.get(ENV_VAR, "").strip().lower() == "system":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # mallopt returns 1 on success; order matters little, both are plain settings.
    return bool(mallopt(_M_MMAP_MAX, 0)) & bool(mallopt(_M_TRIM_THRESHOLD, _NEVER_TRIM))
