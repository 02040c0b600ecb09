import ctypes
import ctypes.util
import json
import os
import subprocess
import sys

import pytest

from pointnet_kit.allocator import ENV_VAR

# In a fresh process: apply the setting, malloc 64 MiB, and ask glibc (mallinfo2) whether the block
# was served by its own mmap (hblks) or from the heap, which a later allocation can reuse.
PROBE = """
import ctypes, ctypes.util, json
from pointnet_kit.allocator import retain_freed_memory

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

took_effect = retain_freed_memory()
libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
libc.mallinfo2.restype = MallInfo2
before = libc.mallinfo2().hblks  # blocks mmapped while Python started
block = libc.malloc(64 << 20)
mmapped = libc.mallinfo2().hblks - before
libc.free(block)
print(json.dumps({"took_effect": took_effect, "mmapped_blocks": mmapped}))
"""


def _has_glibc_mallinfo2() -> bool:
    try:
        return hasattr(ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6"), "mallinfo2")
    except OSError:
        return False


def _probe(setting: str | None) -> dict:
    env = {k: v for k, v in os.environ.items() if k != ENV_VAR}
    if setting is not None:
        env[ENV_VAR] = setting
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


@pytest.mark.skipif(not _has_glibc_mallinfo2(), reason="needs glibc 2.33+ (mallopt, mallinfo2)")
def test_large_blocks_come_from_the_reusable_heap_once_retained():
    assert _probe(None) == {"took_effect": True, "mmapped_blocks": 0}


@pytest.mark.skipif(not _has_glibc_mallinfo2(), reason="needs glibc 2.33+ (mallopt, mallinfo2)")
def test_system_setting_keeps_glibc_defaults():
    assert _probe("system") == {"took_effect": False, "mmapped_blocks": 1}


def test_command_line_applies_it_before_any_command(monkeypatch):
    from pointnet_kit.cli import main as cli_main

    calls = []
    monkeypatch.setattr(cli_main, "retain_freed_memory", lambda: calls.append(True) or True)
    with pytest.raises(SystemExit):
        cli_main.main(["--version"])
    assert calls == [True]
