"""Ctrl-C as a flag: a long loop checks it at a safe point (after a batch) instead of dying mid-write.

>>> with ctrl_c_flag() as stopped:
...     stopped()
False
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def ctrl_c_flag() -> Iterator[Callable[[], bool]]:
    """While active, the first Ctrl-C only sets a flag the loop checks (a second one stops at once)."""
    if threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return
    flag = threading.Event()

    def handler(signum, frame):
        if flag.is_set():
            raise KeyboardInterrupt
        flag.set()

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield flag.is_set
    finally:
        signal.signal(signal.SIGINT, previous)
