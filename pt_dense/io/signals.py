"""Native fault-signal handlers kept across a library that replaces them.

Ray's driver installs crash handlers of its own for SIGSEGV, SIGBUS, SIGILL and SIGFPE on ``ray.init`` and resets
them to the default on ``ray.shutdown``. A JVM started earlier in the same process (Pyserini, Lucene, the Java
bridge) handles SIGSEGV itself in ordinary work (implicit null checks, safepoint polls), so after either call its
next such fault killed the whole process. :func:`kept_fault_handlers` puts the handlers that were there back.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import signal
from collections.abc import Iterator

FAULT_SIGNALS = (signal.SIGSEGV, signal.SIGBUS, signal.SIGILL, signal.SIGFPE)
#: bytes reserved for a ``struct sigaction``: more than it takes on any Linux or macOS ABI (152 on x86-64 glibc)
SIGACTION_BYTES = 512
_LIBC = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def fault_handlers() -> dict[int, bytes]:
    """The native handlers (``struct sigaction``, as bytes) of the fault signals now."""
    saved = {}
    for sig in FAULT_SIGNALS:
        action = ctypes.create_string_buffer(SIGACTION_BYTES)
        if _LIBC.sigaction(int(sig), None, action) == 0:
            saved[int(sig)] = action.raw
    return saved


def handler_addresses() -> dict[int, int]:
    """The address of each fault signal's native handler now (``sa_handler``, the first field of a sigaction on
    Linux; 0 is the default action): what tells whether a library replaced them."""
    size = ctypes.sizeof(ctypes.c_void_p)
    return {sig: int.from_bytes(action[:size], "little") for sig, action in fault_handlers().items()}


@contextlib.contextmanager
def kept_fault_handlers() -> Iterator[None]:
    """Run the block, then restore the fault signals' native handlers to what they were before it."""
    saved = fault_handlers()
    try:
        yield
    finally:
        for sig, action in saved.items():
            _LIBC.sigaction(sig, ctypes.create_string_buffer(action, SIGACTION_BYTES), None)


__all__ = ["FAULT_SIGNALS", "fault_handlers", "handler_addresses", "kept_fault_handlers"]
