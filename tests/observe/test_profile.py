"""`profile` on real containers: stacks sampled from memory by the helper (no code in the
target), rendered as a table, a flame graph SVG, speedscope JSON and collapsed stacks."""

import json
import xml.etree.ElementTree as ET

import jsonschema

from tests.conftest import wand
from tests.observe.speedscope_schema import SCHEMA, check_references

BUSY = ("python3", "/app/busy.py")  # main thread spinning in work()
BLOCKED = ("python3", "/app/blocked.py")  # main thread in time.sleep(3600)
SVG = "{http://www.w3.org/2000/svg}"


def test_cpu_bound_function_on_top_svg_speedscope_collapsed(app, tmp_path):
    c = app(*BUSY)
    svg, ss, folded = tmp_path / "flame.svg", tmp_path / "p.json", tmp_path / "p.txt"
    cp = wand("profile", f"docker/{c.name}", "--duration", "2s", "--rate", "100", "-o",
              str(svg), timeout=90)
    assert cp.returncode == 0, cp.stdout + cp.stderr
    table = cp.stdout.splitlines()
    assert table[0].split()[:4] == ["SELF%", "SELF", "TOTAL%", "TOTAL"]
    top = table[1].split()
    assert top[4:] == ["work", "/app/busy.py"], cp.stdout  # the CPU-bound function first
    assert float(top[0].rstrip("%")) > 80, cp.stdout
    assert "samples" in cp.stderr and f"wrote {svg}" in cp.stderr
    root = ET.parse(svg).getroot()  # well-formed XML
    assert root.tag == SVG + "svg"
    titles = [t.text for t in root.iter(SVG + "title")]
    assert any(t.startswith("work (/app/busy.py) — ") for t in titles), titles
    assert any(t.startswith("main (/app/busy.py)") for t in titles)
    assert root.find(f"{SVG}script") is not None  # hover/zoom/search code, inline
    assert not any(e.get("href") or e.get("{http://www.w3.org/1999/xlink}href")
                   for e in root.iter())  # self-contained

    cp = wand("profile", f"docker/{c.name}", "--duration", "1s", "--lines", "--top", "0",
              "-o", str(ss), timeout=90)
    assert cp.returncode == 0, cp.stdout + cp.stderr
    doc = json.loads(ss.read_text())
    jsonschema.validate(doc, SCHEMA)
    check_references(doc)
    prof = doc["profiles"][0]
    assert prof["type"] == "sampled" and len(prof["samples"]) == len(prof["weights"])
    names = [f["name"] for f in doc["shared"]["frames"]]
    heaviest = prof["samples"][prof["weights"].index(max(prof["weights"]))]
    assert names[heaviest[-1]] == "work" and names[heaviest[0]] == "<module>"
    assert all(isinstance(f.get("line"), int) for f in doc["shared"]["frames"])  # --lines

    cp = wand("profile", f"docker/{c.name}", "--duration", "1s", "--threads", "main",
              "-o", str(folded), "--top", "3", timeout=90)
    assert cp.returncode == 0, cp.stdout + cp.stderr
    lines = folded.read_text().splitlines()
    stack, count = lines[0].rsplit(" ", 1)
    assert stack == "<module> (/app/busy.py);main (/app/busy.py);work (/app/busy.py)"
    assert int(count) > 0
    assert len(cp.stdout.splitlines()) == 4  # header + --top 3


def test_wedged_process_with_remote_debugging_disabled(app, tmp_path):
    c = app(*BLOCKED, env=["PYTHON_DISABLE_REMOTE_DEBUG=1"])
    out = tmp_path / "p.txt"
    cp = wand("profile", f"docker/{c.name}", "--duration", "1s", "--rate", "50", "-o",
              str(out), timeout=90)
    assert cp.returncode == 0, cp.stdout + cp.stderr
    folded = out.read_text()
    # the main thread, asleep in time.sleep(3600) inside main(): wall-clock samples say so
    assert "<module> (/app/blocked.py);main (/app/blocked.py) " in folded, folded
    assert "serve_forever" in folded  # the HTTP thread too
    # --on-cpu: threads asleep are not counted; nothing was on a CPU
    cp = wand("profile", f"docker/{c.name}", "--duration", "1s", "--on-cpu", timeout=90)
    assert cp.returncode == 0, cp.stdout + cp.stderr
    assert "main" not in cp.stdout
    assert c.staged() == []
    assert "injected" not in c.logs()  # no audit line: nothing ran in the target


def test_profile_all_processes_merged_and_split(app, tmp_path):
    c = app("sh", "-c", "cd /app && exec python3 -m gunicorn -w 2 -b 127.0.0.1:8002 "
            "wsgi_app:app", ready="Booting worker")
    out = tmp_path / "p.json"
    cp = wand("profile", f"docker/{c.name}", "--all-processes", "--duration", "1s",
              "--split", "-o", str(out), timeout=120)
    assert cp.returncode == 0, cp.stdout + cp.stderr
    doc = json.loads(out.read_text())
    jsonschema.validate(doc, SCHEMA)
    check_references(doc)
    names = [f["name"] for f in doc["shared"]["frames"]]
    roots = {names[s[0]] for s in doc["profiles"][0]["samples"]}
    assert len(roots) == 3 and all(r.startswith(f"docker/{c.name} pid ") for r in roots)
    cp = wand("profile", f"docker/{c.name}", "--all-processes", "--duration", "1s",
              "-o", str(out), timeout=120)
    assert cp.returncode == 0, cp.stdout + cp.stderr
    doc = json.loads(out.read_text())
    jsonschema.validate(doc, SCHEMA)
    check_references(doc)
    # merged first, then one profile per process
    assert [p["name"] for p in doc["profiles"]][0] == "all processes"
    assert len(doc["profiles"]) == 4


def test_async_task_stacks(app, tmp_path):
    c = app("sh", "-c", "cd /app && exec python3 -m uvicorn asgi_app:app --host 127.0.0.1 "
            "--port 8001", ready="Uvicorn running")
    out = tmp_path / "p.txt"
    cp = wand("profile", f"docker/{c.name}", "--async", "--duration", "1s", "-o", str(out),
              "--top", "0", timeout=90)
    assert cp.returncode == 0, cp.stdout + cp.stderr
    tasks = [s for s in out.read_text().splitlines() if s.startswith("[asyncio tasks];")]
    # uvicorn's main loop task, waiting in asyncio.sleep, root first
    assert any("Server.serve (" in s and s.rsplit(" ", 1)[0].endswith(
        "sleep (/usr/lib/python3.14/asyncio/tasks.py)") for s in tasks), tasks
    cp = wand("profile", f"docker/{c.name}", "--async", "--duration", "1s", "--threads",
              "main", timeout=90)
    assert cp.returncode == 0
    c2 = app("python3", "/app/busy.py")
    cp = wand("profile", f"docker/{c2.name}", "--async", "--duration", "1s", timeout=90)
    assert cp.returncode == 1 and "asyncio is not in use" in cp.stderr, cp.stderr


def test_ctrl_c_ends_early_and_keeps_the_samples(app):
    import signal
    import subprocess

    from tests.conftest import WAND

    c = app(*BUSY)
    p = subprocess.Popen([WAND, "profile", f"docker/{c.name}", "--duration", "10m", "--top",
                          "1", "--rate", "200"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    # the helper reports its progress once a second: sampling has begun
    err = []
    for line in p.stderr:
        err.append(line)
        if ": sampling" in line:
            break
    try:
        p.send_signal(signal.SIGINT)
        out, rest = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 0, "".join(err) + rest
    assert out.splitlines()[1].split()[4] == "work"
    assert "(stopped early)" in rest
