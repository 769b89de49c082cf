"""The spinner: silent off a terminal and for quick waits, cleared before other output."""

import io
import time

from kubectl_wand import log, progress


class FakeTTY(io.StringIO):
    encoding = "utf-8"

    def isatty(self):
        return True


def test_off_when_not_a_tty(monkeypatch):
    out = io.StringIO()
    with progress.spinner("waiting", stream=out, delay=0):
        time.sleep(0.3)
    assert out.getvalue() == ""


def test_off_with_verbose_or_dumb_terminal(monkeypatch):
    out = FakeTTY()
    monkeypatch.setattr(log, "VERBOSE", True)
    assert not progress.enabled(out)
    monkeypatch.setattr(log, "VERBOSE", False)
    monkeypatch.setenv("TERM", "dumb")
    assert not progress.enabled(out)
    monkeypatch.setenv("TERM", "xterm")
    assert progress.enabled(out)


def test_quick_waits_draw_nothing(monkeypatch):
    monkeypatch.setenv("TERM", "xterm")
    out = FakeTTY()
    with progress.spinner("waiting", stream=out):  # the default delay is a second
        time.sleep(0.2)
    assert out.getvalue() == ""


def test_draws_after_the_delay_and_clears(monkeypatch):
    monkeypatch.setenv("TERM", "xterm")
    out = FakeTTY()
    with progress.spinner("starting the helper", stream=out, delay=0.05):
        time.sleep(0.4)
    text = out.getvalue()
    assert "\r\x1b[K⠋ starting the helper (0s)" in text
    assert text.endswith("\r\x1b[K")  # the line is gone when the wait ends


def test_suspended_clears_and_holds(monkeypatch):
    monkeypatch.setenv("TERM", "xterm")
    out = FakeTTY()
    with progress.spinner("waiting", stream=out, delay=0):
        time.sleep(0.2)
        with progress.suspended():
            mark = len(out.getvalue())
            assert out.getvalue().endswith("\r\x1b[K")
            time.sleep(0.3)
            assert len(out.getvalue()) == mark  # nothing drawn while suspended
        time.sleep(0.2)
    assert len(out.getvalue()) > mark


def test_ascii_frames_for_ascii_streams(monkeypatch):
    monkeypatch.setenv("TERM", "xterm")
    out = FakeTTY()
    out.encoding = "ascii"
    with progress.spinner("waiting", stream=out, delay=0):
        time.sleep(0.15)
    assert "| waiting" in out.getvalue()
