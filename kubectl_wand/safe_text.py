"""Text from the target made safe for the operator's terminal.

Everything a target reports (argv, thread and task names, file and function names, error
text from the agent…) may carry escape sequences that retitle or clear the terminal, move the
cursor or fake a line of ours. ``safe()`` is the one function every printer passes such text
through; ``StreamFilter`` does the same for ``exec`` output on a terminal, where colours may
pass. ``-o json`` needs neither: json.dumps escapes control characters itself.
"""

import re

LIMIT = 2000  # characters of one field shown; more is cut with a note

# C0, DEL, C1; and every format character or separator of Unicode 14 (category Cf, Zl, Zp):
# bidi embeddings/overrides/isolates and marks, zero-width characters, invisible tag
# characters; plus lone surrogates (undecodable bytes). One table, so no per-character pass.
_CLASS = ("\x00-\x1f\x7f-\x9f\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2"
          "\u180e\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u206f\ud800-\udfff"
          "\ufeff\ufff9-\ufffb\U000110bd\U000110cd\U00013430-\U0001343f"
          "\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0001\U000e0020-\U000e007f")
_UNSAFE = re.compile("[" + _CLASS + "]")
_UNSAFE_ML = re.compile("[" + _CLASS.replace("\x00-\x1f", "\x00-\x08\x0b-\x1f") + "]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape_char(c: str) -> str:
    if c in _NAMED:
        return _NAMED[c]
    n = ord(c)
    if 0xDC80 <= n <= 0xDCFF:  # surrogateescape: the byte that could not be decoded
        return "\\x%02x" % (n - 0xDC00)
    if n < 0x100:
        return "\\x%02x" % n
    return "\\u%04x" % n if n <= 0xFFFF else "\\U%08x" % n


def _escape(m) -> str:
    return _escape_char(m.group())


def safe(text, limit: int = LIMIT, multiline: bool = False) -> str:
    """``text`` with every control, bidi and invisible formatting character shown as an
    escape (``\\x1b``, ``\\u202e``), cut to about ``limit`` characters with a note saying how
    much was left out. ``multiline`` keeps newlines and tabs (tracebacks, error messages); a
    carriage return is always shown, so a line can never be overwritten."""
    if text is None:
        return ""
    if not isinstance(text, str):
        text = str(text)
    total = len(text)
    cut = text[:limit] if limit and total > limit else text
    pattern = _UNSAFE_ML if multiline else _UNSAFE
    if not limit:
        return pattern.sub(_escape, cut)
    pieces, size, pos = [], 0, 0
    shown = None  # source characters shown, when the output budget ran out first
    for m in pattern.finditer(cut):
        plain, esc = cut[pos:m.start()], _escape_char(m.group())
        if size + len(plain) > limit:
            break
        pieces += (plain, esc)
        size += len(plain) + len(esc)
        if size > limit:  # never cut inside an escape
            pieces.pop()
            shown = m.start()
            break
        pos = m.end()
    if shown is None:
        plain = cut[pos:][:limit - size]
        pieces.append(plain)
        shown = pos + len(plain)
    out = "".join(pieces)
    if shown < total:
        out += f"…[{total - shown} more characters]"
    return out


def safe_lines(text, limit: int = 64 * 1024) -> str:
    """Multi-line text (a traceback, an error message) for a terminal."""
    return safe(text, limit=limit, multiline=True)


# ---------------------------------------------------------------- exec output on a terminal

# CSI … m (SGR, colours and styles) is the only sequence allowed through
_SGR = re.compile(r"\x1b\[[0-9;:]{0,64}m")
_PARTIAL = re.compile(r"\x1b(\[[0-9;:]{0,64})?$")  # a sequence cut at the chunk's end


class StreamFilter:
    """Stateful filter for ``exec`` output shown on a terminal: text, newlines and tabs pass,
    so do colours (SGR); every other control character or escape sequence (OSC titles,
    clearing, cursor moves, a bare carriage return or backspace) is shown escaped. Chunks may
    split a sequence or a CRLF: the unfinished tail waits for the next chunk (bounded)."""

    def __init__(self):
        self.tail = ""

    def feed(self, data: str) -> str:
        data = self.tail + data
        self.tail = ""
        m = _PARTIAL.search(data[-70:])
        if m:
            cut = len(data) - (len(data[-70:]) - m.start())
            data, self.tail = data[:cut], data[cut:]
        elif data.endswith("\r"):
            data, self.tail = data[:-1], "\r"
        return self._render(data)

    def flush(self) -> str:
        data, self.tail = self.tail, ""
        return self._render(data)

    def _render(self, data: str) -> str:
        out, pos = [], 0
        for m in _SGR.finditer(data):
            out.append(self._plain(data[pos:m.start()]))
            out.append(m.group())
            pos = m.end()
        out.append(self._plain(data[pos:]))
        return "".join(out)

    @staticmethod
    def _plain(s: str) -> str:
        s = s.replace("\r\n", "\n")
        return safe(s, limit=0, multiline=True)
