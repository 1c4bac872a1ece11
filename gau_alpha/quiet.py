"""Keep TensorFlow's native start-up chatter off the terminal.

TensorFlow's C++ runtime writes lines such as ``WARNING: All log messages before
absl::InitializeLog() is called are written to STDERR`` and ``I0000 00:00:... cudart_stub.cc:31]
Could not find cuda drivers ...`` straight to file descriptor 2, before ``TF_CPP_MIN_LOG_LEVEL``
takes effect. :func:`filter_native_log` routes descriptor 2 through a pipe and a thread that
drops exactly those lines (absl's format) and passes everything else through unchanged, so a
command's own one-line error stays one line. The command line uses it unless ``--verbose``.
"""
from __future__ import annotations

import os
import re
import sys
import threading
from typing import Callable

__all__ = ["NATIVE_LOG_LINE", "filter_native_log"]

#: absl's log prefix (``I0000 00:00:1796285665.966556    3103 cudart_stub.cc:31] ``) and the
#: line absl prints before it is initialised
NATIVE_LOG_LINE = re.compile(
    rb"^(?:[IWEF]\d{4} [\d:.]+\s+\d+ [\w.\-]+:\d+\] |WARNING: All log messages before absl::InitializeLog\(\))"
)


_LINE_END = re.compile(rb"(?<=[\r\n])")


def _pump(read_fd: int, write_fd: int) -> None:
    pending = b""
    while True:
        chunk = os.read(read_fd, 65536)
        if not chunk:
            break
        pending += chunk
        # forward complete lines ("\n") and progress-bar updates ("\r") as they come
        pieces = _LINE_END.split(pending)
        pending = pieces.pop()  # the unfinished rest (b"" after a complete line)
        for piece in pieces:
            if not NATIVE_LOG_LINE.match(piece):
                os.write(write_fd, piece)
    if pending and not NATIVE_LOG_LINE.match(pending):
        os.write(write_fd, pending)


def filter_native_log() -> Callable[[], None]:
    """Start filtering descriptor 2; returns ``stop()``, which flushes what is pending,
    restores the original descriptor and waits for the filter thread."""
    try:
        sys.stderr.flush()
    except (AttributeError, ValueError):
        pass
    original = os.dup(2)
    read_fd, write_fd = os.pipe()
    os.dup2(write_fd, 2)
    os.close(write_fd)
    thread = threading.Thread(target=_pump, args=(read_fd, original), name="native-log-filter", daemon=True)
    thread.start()
    stopped = False

    def stop() -> None:
        nonlocal stopped
        if stopped:
            return
        stopped = True
        try:
            sys.stderr.flush()
        except (AttributeError, ValueError):
            pass
        os.dup2(original, 2)  # closes the pipe's last write end: the pump sees end of file
        thread.join(timeout=5)
        os.close(read_fd)
        os.close(original)

    return stop
