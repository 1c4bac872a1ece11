"""Ctrl-C that native code cannot lose.

Python turns SIGINT into ``KeyboardInterrupt`` at the next bytecode; when that happens inside a
callback from TensorFlow's C++ code (building the first Keras layer, for example), the
exception can be swallowed there and the command would run on as if nothing had happened. The
command line installs :func:`install`, whose handler also remembers the interrupt, and the
long-running loops call :func:`check` at their safe points, which raises it again.
"""
from __future__ import annotations

import signal
import threading

__all__ = ["install", "check"]

_pending = False


def _handler(signum, frame) -> None:
    global _pending
    _pending = True
    raise KeyboardInterrupt


def install() -> None:
    """Handle SIGINT as above (from the main thread only; elsewhere this does nothing)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _handler)


def check() -> None:
    """Raise ``KeyboardInterrupt`` if Ctrl-C was pressed since :func:`install`, even if the
    exception it raised then was swallowed."""
    if _pending:
        raise KeyboardInterrupt
