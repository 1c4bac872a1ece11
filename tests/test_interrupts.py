"""A Ctrl-C swallowed by code in between is raised again at the next safe point."""
import os
import signal

import pytest

from gau_alpha import interrupts


def test_a_swallowed_ctrl_c_is_raised_again_by_check(monkeypatch):
    previous = signal.getsignal(signal.SIGINT)
    monkeypatch.setattr(interrupts, "_pending", False)
    interrupts.check()  # nothing pressed: no exception
    interrupts.install()
    try:
        try:
            os.kill(os.getpid(), signal.SIGINT)
        except KeyboardInterrupt:
            pass  # what TensorFlow's C++ callbacks do with it
        with pytest.raises(KeyboardInterrupt):
            interrupts.check()
    finally:
        signal.signal(signal.SIGINT, previous)
