#!/usr/bin/env python3
"""Build the release artefacts of kubectl-wand and keep plugin.yaml in step with them.

    python krew/build.py            # dist/kubectl-wand (zipapp) + dist/kubectl-wand-vX.Y.Z.tar.gz,
                                    # then plugin.yaml gets the version, URIs and sha256
    python krew/build.py --check    # nothing built: plugin.yaml passes the krew-index rules and
                                    # matches the archive in dist/ (version, sha256, layout)

The zipapp is one file that runs with any python3 >= 3.10: kubectl_wand's sources, the pure-
Python dependencies (click, tabulate) taken from the Python running this script, and debugpy as
the prebuilt pure-Python archive the CLI ships to targets (debugpy's wheel has compiled parts).
Both outputs are reproducible: fixed timestamps, owners and order.

Run it with the project's environment (e.g. `.venv/bin/python krew/build.py`): the bundled
dependency versions are the installed ones. --check needs PyYAML (the `test` extra).
"""

import argparse
import gzip
import hashlib
import io
import os
import re
import sys
import tarfile
import tempfile
import zipapp
import zipfile
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PLUGIN = "wand"
API_VERSION = "krew.googlecontainertools.github.com/v1alpha2"
# Where releases are published; plugin.yaml's uri points at the archive attached to the release.
HOMEPAGE = "https://github.com/kubectl-wand/kubectl-wand"
PURE_DEPS = ["click", "tabulate"]  # bundled as source; debugpy goes in as its target archive
PLATFORMS = [("linux", "amd64"), ("linux", "arm64"), ("darwin", "amd64"), ("darwin", "arm64")]
EPOCH = (1980, 1, 1, 0, 0, 0)  # zip's earliest date: reproducible builds
SEMVER = re.compile(r"^v(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
                    r"(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?(\+[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?$")
SHA256 = re.compile(r"^[0-9a-f]{64}$")

MAIN = '''\
# kubectl-wand as one file: python3 kubectl-wand ARGS (or ./kubectl-wand, or `kubectl wand`).
import os
import sys

if sys.version_info < (3, 10):
    sys.stderr.write("error: kubectl-wand needs python3 >= 3.10; %s is %d.%d\\n"
                     "hint: put a newer python3 first on PATH (only the target needs 3.14)\\n"
                     % (sys.executable, sys.version_info[0], sys.version_info[1]))
    sys.exit(1)


def _unpacked(archive):
    # Python cannot cache compiled modules inside a zip, so every run would compile click and
    # the CLI anew (~0.3 s). Unpack once per archive into the user's cache and run from there.
    import hashlib
    import shutil
    import tempfile
    import zipfile

    st = os.stat(archive)
    key = "%s:%d:%d" % (os.path.realpath(archive), st.st_size, st.st_mtime_ns)
    base = os.path.join(os.environ.get("XDG_CACHE_HOME") or
                        os.path.join(os.path.expanduser("~"), ".cache"), "kubectl-wand")
    dest = os.path.join(base, "app-" + hashlib.sha256(key.encode()).hexdigest()[:16])
    if os.path.isfile(os.path.join(dest, ".complete")):
        return dest
    os.makedirs(base, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".app-", dir=base)
    try:
        with zipfile.ZipFile(archive) as z:
            z.extractall(tmp)
        open(os.path.join(tmp, ".complete"), "w").close()
        try:
            os.rename(tmp, dest)
        except OSError:  # another run unpacked it first
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for name in os.listdir(base):  # unpacked copies of older archives
        if name.startswith("app-") and os.path.join(base, name) != dest:
            shutil.rmtree(os.path.join(base, name), ignore_errors=True)
    return dest


_archive = os.path.dirname(os.path.abspath(__file__))
if os.path.isfile(_archive) and not os.environ.get("WAND_ZIPAPP_IN_PLACE"):
    try:
        _dir = _unpacked(_archive)
        sys.path = [_dir if p and os.path.abspath(p) == _archive else p for p in sys.path]
    except Exception:
        pass  # a read-only home: run from the zip itself, just slower

if sys.argv[1:2] == ["__complete"] or os.path.basename(sys.argv[0]).startswith(
        "kubectl_complete-"):  # kubectl's plugin completion protocol: no click import
    from kubectl_wand import completion

    sys.exit(completion.main(sys.argv[2:] if sys.argv[1:2] == ["__complete"] else sys.argv[1:]))
from kubectl_wand.cli import main

main()
'''

COMPLETE_HELPER = '''\
#!/bin/sh
# kubectl runs this for `kubectl wand <TAB>` (kubectl >= 1.26, plugin completion protocol).
# Put it (or a symlink named kubectl_complete-wand pointing at kubectl-wand) on PATH.
here=$(dirname "$0")
if [ -x "$here/kubectl-wand" ]; then
    exec "$here/kubectl-wand" __complete "$@"
fi
exec kubectl-wand __complete "$@"
'''


def version() -> str:
    text = (ROOT / "kubectl_wand" / "__init__.py").read_text(encoding="utf-8")
    return re.search(r'^__version__ = "([^"]+)"', text, re.M).group(1)


def archive_name(v: str) -> str:
    return f"kubectl-wand-v{v}.tar.gz"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ------------------------------------------------------------------ the zipapp

def _dist_files(name):
    """(path inside the zipapp, source file) of an installed pure-Python distribution."""
    dist = metadata.distribution(name)
    out = []
    for f in dist.files or []:
        rel = Path(str(f))
        if ".." in rel.parts or "__pycache__" in rel.parts or rel.suffix == ".pyc":
            continue  # console scripts, caches
        if rel.suffix in (".so", ".pyd", ".dylib", ".dll"):
            raise SystemExit(f"error: {name} has compiled parts ({rel}); cannot bundle it")
        if rel.name in ("RECORD", "INSTALLER", "REQUESTED", "direct_url.json"):
            continue  # install records of this machine, not of the distribution
        src = Path(dist.locate_file(f))
        if src.is_file():
            out.append((rel.as_posix(), src))
    if not out:
        raise SystemExit(f"error: {name} is not installed in {sys.executable}")
    return out


def zipapp_members():
    """Every (name, bytes) of the zipapp, sorted: sources, dependencies, debugpy archive."""
    sys.path.insert(0, str(ROOT))
    from kubectl_wand.engine import bundle

    members = {"__main__.py": MAIN.encode()}
    pkg = ROOT / "kubectl_wand"
    for path in sorted(pkg.rglob("*.py")):
        if "__pycache__" not in path.parts:
            members[path.relative_to(ROOT).as_posix()] = path.read_bytes()
            # zipimport has no namespace packages: every package folder needs an __init__.py
            init = path.parent.relative_to(ROOT).as_posix() + "/__init__.py"
            members.setdefault(init, b"")
    members["kubectl_wand/engine/" + bundle.BUNDLED] = bundle.build(bundle.debugpy_dir())
    members["kubectl_wand/LICENSE"] = (ROOT / "LICENSE").read_bytes()
    for name in PURE_DEPS:
        for arc, src in _dist_files(name):
            members[arc] = src.read_bytes()
    return sorted(members.items())


def build_zipapp(out: Path, interpreter="/usr/bin/env python3") -> Path:
    """A reproducible single-file zipapp at ``out`` (stdlib zipapp adds the shebang)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        plain = Path(tmp) / "app.zip"
        with zipfile.ZipFile(plain, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
            for name, data in zipapp_members():
                info = zipfile.ZipInfo(name, EPOCH)
                info.external_attr = 0o644 << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                z.writestr(info, data, compresslevel=9)
        zipapp.create_archive(plain, out, interpreter=interpreter)
    out.chmod(0o755)
    return out


# ------------------------------------------------------------------ the krew archive

def build_archive(zipapp_path: Path, out: Path) -> Path:
    """kubectl-wand (zipapp), kubectl_complete-wand and LICENSE, exec bits inside."""
    entries = [("kubectl-wand", zipapp_path.read_bytes(), 0o755),
               ("kubectl_complete-wand", COMPLETE_HELPER.encode(), 0o755),
               ("LICENSE", (ROOT / "LICENSE").read_bytes(), 0o644)]
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        for name, data, mode in entries:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), mode, 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tf.addfile(info, io.BytesIO(data))
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "wb") as f, gzip.GzipFile(filename="", mode="wb", fileobj=f, mtime=0,
                                             compresslevel=9) as gz:
        gz.write(raw.getvalue())
    return out


# ------------------------------------------------------------------ plugin.yaml

def uri_for(v: str, base: str = HOMEPAGE) -> str:
    return f"{base}/releases/download/v{v}/{archive_name(v)}"


def update_manifest(path: Path, v: str, sha: str, uri: str) -> str:
    """Rewrite spec.version, every uri and sha256 line in place (the rest stays as written)."""
    text = path.read_text(encoding="utf-8")
    new = re.sub(r"(?m)^(  version:\s*).*$", lambda m: m.group(1) + f"v{v}", text, count=1)
    new = re.sub(r"(?m)^(\s*uri:\s*).*$", lambda m: m.group(1) + uri, new)
    new = re.sub(r"(?m)^(\s*sha256:\s*).*$", lambda m: m.group(1) + sha, new)
    if new != text:
        path.write_text(new, encoding="utf-8")
    return new


def _load_yaml(text):
    try:
        import yaml
    except ImportError:
        raise SystemExit("error: --check needs PyYAML (pip install pyyaml, or the `test` extra)")
    return yaml.safe_load(text)


def _selector_key(sel):
    labels = dict((sel or {}).get("matchLabels") or {})
    for e in (sel or {}).get("matchExpressions") or []:
        if e.get("operator") == "In" and len(e.get("values") or []) == 1:
            labels[e["key"]] = e["values"][0]
    return labels.get("os"), labels.get("arch")


def installed_layout(archive: Path, files):
    """{installed path: (mode, bytes)} after krew's `files` mapping of the archive (globs)."""
    import fnmatch

    with tarfile.open(archive, "r:gz") as tf:
        members = {m.name.lstrip("./"): m for m in tf.getmembers()}
        out = {}
        for spec in files:
            src, dest = spec.get("from", ""), spec.get("to", ".")
            for name, m in members.items():
                if not m.isfile():
                    continue
                if fnmatch.fnmatchcase(name, src):
                    target = os.path.normpath(os.path.join(dest, os.path.basename(name)))
                    out[target] = (m.mode, tf.extractfile(m).read())
        return out


def lint_manifest(doc: dict, expect_version: str = None, archive: Path = None):
    """Problems by krew-index's rules (empty = fine); with ``archive``, also its sha and layout."""
    problems = []
    add = problems.append
    if doc.get("apiVersion") != API_VERSION:
        add(f"apiVersion must be {API_VERSION}")
    if doc.get("kind") != "Plugin":
        add("kind must be Plugin")
    name = (doc.get("metadata") or {}).get("name")
    if name != PLUGIN:
        add(f"metadata.name must be {PLUGIN!r} (the file kubectl-{PLUGIN} is named after it)")
    spec = doc.get("spec") or {}
    ver = spec.get("version") or ""
    if not SEMVER.match(str(ver)):
        add(f"spec.version {ver!r} is not a semantic version with a leading v (vX.Y.Z)")
    if expect_version and ver != f"v{expect_version}":
        add(f"spec.version {ver!r} does not match kubectl_wand.__version__ {expect_version!r}")
    for field in ("shortDescription", "description", "homepage", "caveats"):
        if not str(spec.get(field) or "").strip():
            add(f"spec.{field} is missing")
    if len(str(spec.get("shortDescription") or "")) > 50:
        add("spec.shortDescription is longer than 50 characters")
    if not str(spec.get("homepage") or "").startswith("https://"):
        add("spec.homepage must be an https:// URL")
    caveats = str(spec.get("caveats") or "")
    if "3.10" not in caveats or "kubectl_complete-wand" not in caveats:
        add("spec.caveats must say python3 >= 3.10 is needed and how to enable completion")
    platforms = spec.get("platforms") or []
    if not platforms:
        add("spec.platforms is empty")
    seen = set()
    for i, p in enumerate(platforms):
        where = f"spec.platforms[{i}]"
        sel = p.get("selector")
        if not sel or not (sel.get("matchLabels") or sel.get("matchExpressions")):
            add(f"{where} has no selector")
        key = _selector_key(sel)
        if key in seen:
            add(f"{where} duplicates platform {key}")
        seen.add(key)
        uri = str(p.get("uri") or "")
        if not uri.startswith("https://") or not uri.endswith((".tar.gz", ".zip")):
            add(f"{where}.uri must be an https:// URL of a .tar.gz or .zip")
        sha = str(p.get("sha256") or "")
        if not SHA256.match(sha):
            add(f"{where}.sha256 must be 64 lowercase hex digits")
        bin_ = p.get("bin")
        files = p.get("files") or []
        if not bin_:
            add(f"{where}.bin is missing")
        if not files or any(not f.get("from") for f in files):
            add(f"{where}.files is missing or has an entry without `from`")
        if not any(str(f.get("from", "")).startswith("LICENSE") for f in files):
            add(f"{where}.files must install the LICENSE")
        if archive is not None:
            if sha256_file(archive) != sha:
                add(f"{where}.sha256 does not match {archive.name}")
            layout = installed_layout(archive, files)
            if bin_ not in layout:
                add(f"{where}.bin {bin_!r} is not in the installed files: {sorted(layout)}")
            elif not layout[bin_][0] & 0o111:
                add(f"{where}.bin {bin_!r} is not executable inside the archive")
            if not any(k.startswith("LICENSE") for k in layout):
                add(f"{where}: no LICENSE in the installed files")
    for wanted in PLATFORMS:
        if wanted not in seen:
            add(f"spec.platforms lacks {wanted[0]}/{wanted[1]}")
    return problems


def check(manifest: Path, dist: Path) -> int:
    v = version()
    doc = _load_yaml(manifest.read_text(encoding="utf-8"))
    archive = dist / archive_name(v)
    if not archive.is_file():
        print(f"error: {archive} is missing (run krew/build.py first)", file=sys.stderr)
        return 1
    problems = lint_manifest(doc, v, archive)
    for p in problems:
        print(f"error: {manifest.name}: {p}", file=sys.stderr)
    if not problems:
        print(f"{manifest.name} v{v}: krew-index rules pass; {archive.name} "
              f"sha256 {sha256_file(archive)} matches")
    return 1 if problems else 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dist", type=Path, default=ROOT / "dist", help="output folder (dist/)")
    ap.add_argument("--manifest", type=Path, default=ROOT / "plugin.yaml",
                    help="the krew manifest to update or check (plugin.yaml)")
    ap.add_argument("--url-base", default=HOMEPAGE,
                    help="release URL base; uri = BASE/releases/download/vX.Y.Z/ARCHIVE")
    ap.add_argument("--check", action="store_true",
                    help="build nothing; check the manifest and the archive in --dist")
    ap.add_argument("--no-manifest", action="store_true", help="build only")
    args = ap.parse_args(argv)
    if args.check:
        return check(args.manifest, args.dist)
    v = version()
    app = build_zipapp(args.dist / "kubectl-wand")
    archive = build_archive(app, args.dist / archive_name(v))
    sha = sha256_file(archive)
    print(f"{app} ({app.stat().st_size // 1024} KiB zipapp)")
    print(f"{archive} sha256 {sha}")
    if not args.no_manifest:
        update_manifest(args.manifest, v, sha, uri_for(v, args.url_base.rstrip("/")))
        print(f"{args.manifest}: v{v}, sha256 filled in")
    return 0


if __name__ == "__main__":
    sys.exit(main())
