"""Pure parts of `trace` and `profile`: argument parsing, path matching, rendering of hostile
names, bounds on what a helper sends."""

import json
import xml.etree.ElementTree as ET

import pytest

from kubectl_wand.cli.observe import safe
from kubectl_wand.cli.trace import hit_line
from kubectl_wand.engine import flame, profile, trace
from kubectl_wand.errors import UsageError, WandError
from kubectl_wand.payload import tracer

HOSTILE = "evil\x1b]0;pwned\x07\x1b[2J<b>&\"'\x00;x\ud800"


def test_split_args_locations_and_expressions():
    locs, exprs = trace.split_args(["app/views.py:42", "b.py:7", "request.path", "d[1:2]"])
    assert locs == [{"file": "app/views.py", "line": 42}, {"file": "b.py", "line": 7}]
    assert exprs == ["request.path", "d[1:2]"]
    assert trace.split_args(["a.py:1"]) == ([{"file": "a.py", "line": 1}], [])
    assert trace.split_args(["a.py:1", "lambda:1"])[1] == ["lambda:1"]
    with pytest.raises(UsageError):
        trace.split_args(["x + 1"])
    with pytest.raises(UsageError):
        trace.split_args(["a.py:1"] + ["x"] * 11)


@pytest.mark.parametrize("text,rate", [(None, 10.0), ("5", 5.0), ("5/s", 5.0),
                                        ("120/m", 2.0), ("0.5/s", 0.5)])
def test_parse_rate(text, rate):
    assert trace.parse_rate(text) == rate


@pytest.mark.parametrize("text", ["0", "-1", "fast", "5/d", "20000/s"])
def test_parse_rate_refused(text):
    with pytest.raises(UsageError):
        trace.parse_rate(text)


def test_suffix_match_like_path_mappings():
    files = {"/app/shop/views.py", "/app/blog/views.py", "/usr/lib/python3.14/json/__init__.py"}
    assert tracer.resolve_file("/home/me/src/shop/views.py", files) == "/app/shop/views.py"
    assert tracer.resolve_file("blog/views.py", files) == "/app/blog/views.py"
    with pytest.raises(tracer.Fail) as e:
        tracer.resolve_file("views.py", files)
    assert e.value.code == "ambiguous-file"
    with pytest.raises(tracer.Fail) as e:
        tracer.resolve_file("nothing.py", files)
    assert e.value.code == "no-file"


def test_bounded_repr():
    assert len(tracer.bounded_repr("x" * 5000)) <= 310 and "..." in tracer.bounded_repr("x" * 5000)
    assert len(tracer.bounded_repr(list(range(10000)))) < 200

    class Bad:
        def __repr__(self):
            raise RuntimeError("no")

    assert tracer.bounded_repr(Bad()).startswith("<Bad instance at ")  # never raises


def test_terminal_text_is_escaped():
    s = safe(HOSTILE)
    assert "\x1b" not in s and "\x07" not in s and "\x00" not in s and "\ud800" not in s
    assert "\\x1b]0;pwned\\x07" in s
    assert safe("y" * 10000, 100).startswith("y" * 100 + "…")
    line = hit_line("", {"time": 0, "at": "/app/" + HOSTILE + ".py:3", "thread": HOSTILE,
                         "values": [[HOSTILE, HOSTILE + "\nnext"]]})
    assert "\x1b" not in line and "\n" not in line


def stacks_of(*items):
    return {tuple(tuple(f) for f in k): c for k, c in items}


MOD, MAIN, WORK = ("<module>", "/app/a.py", 0), ("main", "/app/a.py", 0), ("work", "/app/a.py", 0)


def test_top_collapsed_speedscope():
    st = stacks_of(((MOD, MAIN, WORK), 90), ((MOD, MAIN), 10))
    rows = profile.top(st, 2)
    assert [(r["function"], r["self"], r["total"]) for r in rows] == [("work", 90, 90),
                                                                       ("main", 10, 100)]
    assert profile.collapsed(st).splitlines() == [
        "<module> (/app/a.py);main (/app/a.py);work (/app/a.py) 90",
        "<module> (/app/a.py);main (/app/a.py) 10"]
    doc = profile.speedscope([("p", st)], 100.0, "t")
    from tests.observe.speedscope_schema import SCHEMA, check_references
    import jsonschema

    jsonschema.validate(doc, SCHEMA)
    check_references(doc)
    assert doc["profiles"][0]["weights"] == [0.9, 0.1]


def test_flame_graph_escapes_hostile_names_and_parses():
    bad = (HOSTILE, "/app/" + HOSTILE + ".py", 0)
    st = stacks_of(((MOD, bad), 5), ((MOD, WORK), 5))
    doc = flame.svg(st, HOSTILE)
    root = ET.fromstring(doc.encode())
    texts = " ".join(t.text or "" for t in root.iter("{http://www.w3.org/2000/svg}title"))
    assert "evil" in texts and "\x1b" not in doc and "<b>" not in doc
    assert "]]>" not in doc.split("<![CDATA[", 1)[1].rsplit("]]>", 1)[0]


def test_collapsed_names_cannot_forge_frames_or_lines():
    st = stacks_of((((("a;b\nc 99", "/f.py", 0),)), 1))
    assert profile.collapsed(st) == "a:b c 99 (/f.py) 1\n"


def test_decode_checks_what_the_helper_sends():
    ev = {"frames": [["f", "/a.py", 3], ["g", "/a.py", 0]], "stacks": [[[0, 1], 4], [[1], 2]]}
    assert profile.decode(ev) == {(("f", "/a.py", 3), ("g", "/a.py", 0)): 4,
                                  (("g", "/a.py", 0),): 2}
    for bad in ({"frames": [["f"]], "stacks": []}, {"frames": [], "stacks": [[[5], 1]]},
                {"frames": [["f", "a", 1]] * (profile.MAX_FRAMES + 1), "stacks": []}):
        with pytest.raises(WandError):
            profile.decode(bad)
    deep = {"frames": [["f", "/a.py", 0]], "stacks": [[[0] * 5000, 1]]}
    assert len(next(iter(profile.decode(deep)))) == profile.MAX_DEPTH


def test_format_for():
    assert profile.format_for("x.svg", None) == "svg"
    assert profile.format_for("x.JSON", None) == "speedscope"
    assert profile.format_for("x.txt", None) == "collapsed"
    assert profile.format_for("x.txt", "svg") == "svg"
    assert json.loads(json.dumps(profile.speedscope([], 1.0, "n")))["profiles"] == []
