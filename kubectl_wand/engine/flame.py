"""A self-contained interactive flame graph (SVG with embedded JavaScript): hover shows a
frame's samples, click zooms into it, Ctrl-F / the Search button highlights matches."""

import re
import zlib
from typing import List, Tuple

from kubectl_wand.engine.profile import Stacks, frame_name

WIDTH, ROW, PAD_TOP, PAD_BOTTOM = 1200, 16, 40, 24
MIN_FRACTION = 0.0005  # frames narrower than this (of the whole) are left out: bounded size
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def xml(s: str) -> str:
    s = _NOT_XML.sub(lambda m: "\\x%02x" % (ord(m.group()) & 0xff), s)
    return (s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;").replace("'", "&#39;"))


def _tree(stacks: Stacks):
    root = {"n": 0, "kids": {}}
    for k, c in stacks.items():
        root["n"] += c
        node = root
        for f in k:
            node = node["kids"].setdefault(f, {"n": 0, "kids": {}})
            node["n"] += c
    return root


def _color(name: str) -> str:
    h = zlib.crc32(name.encode("utf-8", "replace"))
    return "rgb(%d,%d,%d)" % (205 + h % 50, 80 + (h >> 8) % 130, 30 + (h >> 16) % 50)


def _layout(root) -> List[Tuple[int, int, int, str, int]]:
    """(depth, start, samples, name, self) of every frame wide enough, root first."""
    total = root["n"] or 1
    out = []
    stack = [(root, 0, -1)]
    while stack:
        node, start, depth = stack.pop()
        x = start
        for f, kid in sorted(node["kids"].items(), key=lambda kv: kv[0]):
            if kid["n"] / total >= MIN_FRACTION:
                own = kid["n"] - sum(g["n"] for g in kid["kids"].values())
                out.append((depth + 1, x, kid["n"], frame_name(f), own))
                stack.append((kid, x, depth + 1))
            x += kid["n"]
    return out


def svg(stacks: Stacks, title: str, unit: str = "samples") -> str:
    root = _tree(stacks)
    total = root["n"]
    boxes = _layout(root)
    depth = max((b[0] for b in boxes), default=0) + 1
    height = PAD_TOP + depth * ROW + PAD_BOTTOM
    parts = [
        '<?xml version="1.0" encoding="UTF-8" standalone="no"?>',
        f'<svg version="1.1" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" '
        'xmlns="http://www.w3.org/2000/svg" onload="init(evt)">',
        '<style>text{font-family:Verdana,sans-serif;font-size:12px}'
        '#frames g:hover rect{stroke:#000;stroke-width:0.5}'
        '.btn{cursor:pointer;fill:#036}</style>',
        f'<rect x="0" y="0" width="{WIDTH}" height="{height}" fill="#fdfdf6"/>',
        f'<text x="{WIDTH / 2}" y="20" text-anchor="middle" style="font-size:15px">'
        f'{xml(title)}</text>',
        '<text id="reset" class="btn" x="10" y="20" visibility="hidden">Reset zoom</text>',
        f'<text id="search" class="btn" x="{WIDTH - 110}" y="20">Search</text>',
        f'<text id="matched" x="{WIDTH - 110}" y="{height - 6}"></text>',
        f'<text id="details" x="10" y="{height - 6}"> </text>',
        f'<g id="frames" data-total="{total}" data-rows="{depth}">',
    ]
    for d, start, n, name, own in boxes:
        x = WIDTH * start / (total or 1)
        w = WIDTH * n / (total or 1)
        y = height - PAD_BOTTOM - (d + 1) * ROW
        pct = 100.0 * n / (total or 1)
        parts.append(
            f'<g data-s="{start}" data-n="{n}" data-d="{d}"><title>{xml(name)} — {n} {unit} '
            f'({pct:.2f}%), self {own}</title>'
            f'<rect x="{x:.2f}" y="{y}" width="{max(w - 0.5, 0.1):.2f}" height="{ROW - 1}" '
            f'fill="{_color(name)}" rx="2"/>'
            f'<text x="{x + 3:.2f}" y="{y + ROW - 4}">{xml(name)}</text></g>')
    parts.append("</g>")
    parts.append("<script type=\"text/ecmascript\"><![CDATA[\n" + _JS + "\n]]></script>")
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


# Plain ES5 so that any browser opening the file runs it; no network, no external files.
_JS = r"""
var W = %d, frames, gs, total, details, matched, resetBtn, zoomed = null, pattern = null;
function init(evt) {
  frames = document.getElementById("frames");
  gs = frames.getElementsByTagName("g");
  total = +frames.getAttribute("data-total");
  details = document.getElementById("details");
  matched = document.getElementById("matched");
  resetBtn = document.getElementById("reset");
  for (var i = 0; i < gs.length; i++) {
    var g = gs[i];
    g.setAttribute("data-name", g.getElementsByTagName("text")[0].textContent);
    g.onmouseover = function () { details.textContent = this.getElementsByTagName("title")[0].textContent; };
    g.onmouseout = function () { details.textContent = " "; };
    g.onclick = function () { zoom(this); };
  }
  resetBtn.onclick = function () { zoom(null); };
  document.getElementById("search").onclick = search;
  window.addEventListener("keydown", function (e) {
    if ((e.ctrlKey || e.metaKey) && e.keyCode === 70) { e.preventDefault(); search(); }
    if (e.keyCode === 27) { zoom(null); }
  });
  zoom(null);
}
function place(g, x, w) {
  var r = g.getElementsByTagName("rect")[0], t = g.getElementsByTagName("text")[0];
  r.setAttribute("x", x.toFixed(2));
  r.setAttribute("width", Math.max(w - 0.5, 0.1).toFixed(2));
  t.setAttribute("x", (x + 3).toFixed(2));
  var name = g.getAttribute("data-name"), fit = Math.floor((w - 6) / 7);
  t.textContent = fit < 3 ? "" : (name.length <= fit ? name : name.substring(0, fit - 2) + "..");
}
function zoom(node) {
  zoomed = node;
  var s0 = 0, n0 = total, d0 = -1;
  if (node) { s0 = +node.getAttribute("data-s"); n0 = +node.getAttribute("data-n"); d0 = +node.getAttribute("data-d"); }
  resetBtn.setAttribute("visibility", node ? "visible" : "hidden");
  for (var i = 0; i < gs.length; i++) {
    var g = gs[i], s = +g.getAttribute("data-s"), n = +g.getAttribute("data-n"), d = +g.getAttribute("data-d");
    if (d >= d0 && s >= s0 && s + n <= s0 + n0) {
      g.style.display = ""; g.style.opacity = 1;
      place(g, W * (s - s0) / n0, W * n / n0);
    } else if (d < d0 && s <= s0 && s + n >= s0 + n0) {
      g.style.display = ""; g.style.opacity = 0.5;
      place(g, 0, W);
    } else {
      g.style.display = "none";
    }
  }
}
function search() {
  var term = prompt("Search (regular expression)", pattern ? pattern.source : "");
  if (term === null) { return; }
  var re = null, hits = [], i;
  try { re = term ? new RegExp(term) : null; } catch (e) { alert("invalid regular expression"); return; }
  pattern = re;
  for (i = 0; i < gs.length; i++) {
    var g = gs[i], r = g.getElementsByTagName("rect")[0];
    if (!r.getAttribute("data-fill")) { r.setAttribute("data-fill", r.getAttribute("fill")); }
    if (re && re.test(g.getAttribute("data-name"))) {
      r.setAttribute("fill", "rgb(230,0,230)");
      hits.push([+g.getAttribute("data-s"), +g.getAttribute("data-n")]);
    } else {
      r.setAttribute("fill", r.getAttribute("data-fill"));
    }
  }
  // samples covered by a match, nested matches counted once
  hits.sort(function (a, b) { return a[0] - b[0] || b[1] - a[1]; });
  var covered = 0, end = -1;
  for (i = 0; i < hits.length; i++) {
    var s = hits[i][0], e = s + hits[i][1];
    if (e <= end) { continue; }
    covered += e - Math.max(s, end); end = e;
  }
  matched.textContent = re ? "Matched: " + (100 * covered / total).toFixed(1) + "%%" : "";
}
""" % WIDTH
