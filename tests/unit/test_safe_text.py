"""The sanitizer every printer uses for text from the target, and the exec output filter."""

import pytest

from kubectl_wand.safe_text import StreamFilter, safe, safe_lines


@pytest.mark.parametrize("text, shown", [
    ("uvicorn app:app --port 8000", "uvicorn app:app --port 8000"),
    ("é日本語 ünïcode ✓", "é日本語 ünïcode ✓"),  # legitimate non-ASCII stays readable
    ("\x1b]0;pwned\x07", "\\x1b]0;pwned\\x07"),  # OSC: retitle the terminal
    ("\x1b[2J\x1b[H", "\\x1b[2J\\x1b[H"),  # clear screen, cursor home
    ("\x1b[31mred\x1b[0m", "\\x1b[31mred\\x1b[0m"),  # even colours: a field never paints
    ("a\nb\rc\td", "a\\nb\\rc\\td"),  # a field is one line
    ("\x00\x7f", "\\x00\\x7f"),
    ("\x9b2J", "\\x9b2J"),  # C1 CSI: one byte that starts a sequence on some terminals
    ("\u202eevil.py", "\\u202eevil.py"),  # bidi override (Trojan Source)
    ("a\u2066b\u2069c\u200fd", "a\\u2066b\\u2069c\\u200fd"),  # isolates, RLM
    ("zero\u200bwidth\ufeff", "zero\\u200bwidth\\ufeff"),
    ("line\u2028sep", "line\\u2028sep"),
    ("tag\U000e0041", "tag\\U000e0041"),  # invisible tag character
    ("bad\udcffbyte", "bad\\xffbyte"),  # surrogateescape'd byte
    ("back\\x1bslash", "back\\x1bslash"),  # literal text stays literal
])
def test_safe_table(text, shown):
    assert safe(text) == shown


def test_safe_bounds_length_with_a_note():
    out = safe("x" * 5000, limit=100)
    assert out == "x" * 100 + "…[4900 more characters]"


def test_safe_never_cuts_inside_an_escape():
    out = safe("ab\x1bcd", limit=4)
    assert out == "ab…[3 more characters]"
    out = safe("\x1b" * 100, limit=10)
    assert out == "\\x1b\\x1b…[98 more characters]"


def test_safe_huge_input_is_cheap():
    # 1.6 MB of argv: only the head is looked at
    out = safe("\x1b" * 1_600_000, limit=2000)
    assert len(out) < 2100 and out.endswith("more characters]")


def test_safe_non_text():
    assert safe(None) == "" and safe(1234) == "1234"


def test_safe_lines_keeps_newlines_and_tabs_only():
    assert safe_lines("a\n\tb\r\x1b[2Kc") == "a\n\tb\\r\\x1b[2Kc"


@pytest.mark.parametrize("chunks, shown", [
    (["hello\n"], "hello\n"),
    (["\x1b[1;31mred\x1b[0m\n"], "\x1b[1;31mred\x1b[0m\n"),  # SGR passes
    (["\x1b[3", "1mred"], "\x1b[31mred"),  # split across chunks, still recognised
    (["\x1b]0;title\x07"], "\\x1b]0;title\\x07"),  # OSC neutralised
    (["\x1b]0;ti", "tle\x07"], "\\x1b]0;title\\x07"),
    (["\x1b[2J\x1b[10;10H"], "\\x1b[2J\\x1b[10;10H"),  # clear, cursor move
    (["a\r\nb\n"], "a\nb\n"),  # CRLF is a newline
    (["a\r", "\nb"], "a\nb"),  # even split
    (["50%\r60%"], "50%\\r60%"),  # a bare CR could overwrite a line: shown
    (["x\x08y"], "x\\x08y"),
    (["\u202ertl"], "\\u202ertl"),
    (["tail\x1b["], "tail\\x1b["),  # an unfinished sequence at the end is flushed escaped
])
def test_stream_filter(chunks, shown):
    f = StreamFilter()
    assert "".join(f.feed(c) for c in chunks) + f.flush() == shown


def test_stream_filter_tail_is_bounded():
    f = StreamFilter()
    out = f.feed("\x1b[" + "1;" * 10_000)
    assert len(f.tail) <= 70 and "\\x1b[" in out
