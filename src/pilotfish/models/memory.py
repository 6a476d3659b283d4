"""Handing freed memory back to the operating system between model batches.

glibc keeps the buffers a batch of activations freed in its heaps (its mmap threshold rises after the first
large frees, so later tensors come from the heap), and fragments them: over a long bulk encode the process's
resident memory grows with the number of batches, not with the batch. Measured with MiniLM on 3,000 passages
encoded in calls of 500: resident memory rose from 521 to 1,012 MB without a trim, still growing, and stayed at
613-618 MB after the first call with a trim after each one; the whole encode took 85.8 s against 83.7 s.

>>> _ = release_free_memory()   # True after a trim; False where the C library has no malloc_trim (macOS, musl)
"""

from __future__ import annotations

import ctypes
import ctypes.util
from functools import cache
from typing import Any


@cache
def _trim() -> Any:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc.malloc_trim
    except (OSError, AttributeError):
        return None


def release_free_memory() -> bool:
    """Return the C heap's free pages to the system (glibc's `malloc_trim`); False where it is not available."""
    trim = _trim()
    if trim is None:
        return False
    trim(0)
    return True
