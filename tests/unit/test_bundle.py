"""The debugpy archive shipped to targets: pure Python, deterministic, small."""

import io
import tarfile

import pytest

from kubectl_wand.engine import bundle


@pytest.fixture(scope="module")
def tgz():
    return bundle.build(bundle.debugpy_dir())


@pytest.fixture(scope="module")
def members(tgz):
    with tarfile.open(fileobj=io.BytesIO(tgz), mode="r:gz") as tf:
        return tf.getmembers()


def test_no_compiled_parts(members):
    names = [m.name for m in members]
    assert len(names) > 100
    bad = [n for n in names if n.endswith(bundle.SKIP_SUFFIXES)
           or "pydevd_attach_to_process" in n or "__pycache__" in n
           or "_pydevd_frame_eval_ext" in n]
    assert bad == []


def test_has_package_and_plain_members(members):
    by_name = {m.name: m for m in members}
    assert "debugpy/__init__.py" in by_name
    assert "debugpy/server/api.py" in by_name
    assert all(n.startswith("debugpy/") and ".." not in n.split("/") for n in by_name)
    assert all(m.isfile() and m.mode == 0o644 and m.mtime == 0 and m.uid == 0
               for m in members)


def test_extracts_with_data_filter(tgz, tmp_path):
    with tarfile.open(fileobj=io.BytesIO(tgz), mode="r:gz") as tf:
        tf.extractall(tmp_path, filter="data")
    init = (tmp_path / "debugpy" / "__init__.py").read_text()
    assert "__version__" in init or "version" in init


def test_deterministic(tgz):
    again = bundle.build(bundle.debugpy_dir())
    assert again == tgz


def test_small(tgz):
    assert tgz[:2] == b"\x1f\x8b"
    assert len(tgz) < 2 * 1024 * 1024


def test_cached_copy_is_reused(tmp_path, monkeypatch, tgz):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    first = bundle.debugpy_tgz()
    assert first == tgz
    cached = list((tmp_path / "kubectl-wand").glob("debugpy-*.tgz"))
    assert len(cached) == 1
    cached[0].write_bytes(b"marker")
    assert bundle.debugpy_tgz() == b"marker"


def test_no_debugpy(monkeypatch):
    monkeypatch.setattr(bundle.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(bundle.WandError) as ei:
        bundle.debugpy_dir()
    assert ei.value.code == "no-debugpy"


def test_injector_parts_ship_as_one_text_within_bounds():
    """The injector's parts are shipped as one source: stage 2 may carry it in argv (one
    argument: at most 128 KiB), so it stays well under; each part is a readable file."""
    from kubectl_wand import payload
    from kubectl_wand.payload import injector

    text = payload.source("injector")
    assert len(text.encode()) < 100 * 1024
    compile(text, "injector", "exec")  # one namespace, no part imports another
    assert all(part in payload.INJECTOR_PARTS for part in ("binaries", "injector/stages"))
    for part in payload.INJECTOR_PARTS:
        n = payload._text(part).count("\n")
        assert n <= 600, (part, n)
        assert payload._text(part) in text
    assert callable(injector.stage1) and injector.PROC == "/proc"


def test_the_agent_ships_with_every_operation_it_dispatches():
    """The agent is one text of several parts (payload.AGENT_PARTS): every operation its
    dispatcher names must be defined in what is shipped, whichever caller ships it."""
    import re

    from kubectl_wand import payload

    text = payload.source("agent")
    assert text == payload.agent_source()
    ns = {"__name__": "_kubectl_wand_agent"}
    exec(compile(text, "agent", "exec"), ns)
    table = re.search(r"work = \{(.*?)\}\.get\(op\)", text, re.S).group(1)
    names = re.findall(r":\s*(\w+)", table)
    assert len(names) >= 7
    for name in names:
        assert callable(ns.get(name)), name
