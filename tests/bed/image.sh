#!/usr/bin/env bash
# The image recipe: build one wand-bed image from a debootstrapped Debian unstable rootfs.
# Called by setup.sh; its own text and the apps/ files make up the image tag hash, so an
# edit here rebuilds the images.
#
#   image.sh VARIANT TAG MIRROR WORKDIR      VARIANT: py314 | py313
set -euo pipefail

variant=$1 tag=$2 mirror=$3 workdir=$4
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

case $variant in
  # Unstable's default python3 is 3.14, so the python3-* packages below are built for it.
  # Never add python3-debugpy (targets must not have it) nor procps.
  py314) pkgs=python3.14,python3,python3-uvicorn,python3-fastapi,python3-gunicorn,python3-flask
         want=3.14 ;;
  # Only the interpreter: for version-mismatch tests.
  py313) pkgs=python3.13
         want=3.13 ;;
  *) echo "image.sh: unknown variant $variant" >&2; exit 2 ;;
esac

rootfs="$workdir/rootfs-$variant"
log="$workdir/debootstrap-$variant.log"

start=$SECONDS
if ! debootstrap --variant=minbase --include="$pkgs" sid "$rootfs" "$mirror" >"$log" 2>&1; then
  echo "[$variant] debootstrap failed; last lines of $log:" >&2
  tail -n 20 "$log" >&2
  exit 1
fi

boot=$((SECONDS - start))

# python3 must be the wanted version (3.13 has no /usr/bin/python3 of its own: link it).
if [ ! -e "$rootfs/usr/bin/python3" ]; then
  ln -s "python$want" "$rootfs/usr/bin/python3"
fi
got=$(chroot "$rootfs" /usr/bin/python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
if [ "$got" != "$want" ]; then
  echo "[$variant] python3 in the rootfs is $got, expected $want" >&2
  exit 1
fi
for bad in usr/bin/ps bin/ps; do
  if [ -e "$rootfs/$bad" ]; then echo "[$variant] warning: /$bad is present (procps pulled in?)" >&2; fi
done
if chroot "$rootfs" /usr/bin/python3 -c 'import debugpy' 2>/dev/null; then
  echo "[$variant] debugpy is importable in the image; it must not be" >&2
  exit 1
fi

# User app 1000:1000, home /app: the dir belongs to app (gunicorn >= 26 puts its control socket in
# $HOME/.gunicorn), the code files stay root's and world-readable.
grep -q '^app:' "$rootfs/etc/group"  || echo 'app:x:1000:' >>"$rootfs/etc/group"
grep -q '^app:' "$rootfs/etc/passwd" || echo 'app:x:1000:1000:app:/app:/bin/sh' >>"$rootfs/etc/passwd"
grep -q '^app:' "$rootfs/etc/shadow" || echo 'app:!:19000::::::' >>"$rootfs/etc/shadow"
install -d -m 0755 -o 1000 -g 1000 "$rootfs/app"
find "$here/apps" -maxdepth 1 -type f ! -name '*.pyc' -exec install -m 0644 {} "$rootfs/app/" \;

# Slim down: caches, indexes, docs, logs, device nodes (Docker provides /dev), host resolv.conf.
rm -rf "$rootfs"/var/cache/apt/* "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/debconf/*-old \
       "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* \
       "$rootfs"/usr/share/locale/* "$rootfs"/usr/share/lintian "$rootfs"/var/log/* \
       "$rootfs"/dev/* "$rootfs"/etc/resolv.conf "$rootfs"/etc/hostname "$rootfs"/tmp/* \
       "$rootfs"/root/.cache
# (Debian's byte-compiled __pycache__ dirs stay: they make imports, and so tests, faster.)

start=$SECONDS
tar --numeric-owner -C "$rootfs" -c . | docker import \
  -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  -c 'ENV LANG=C.UTF-8' \
  -c 'WORKDIR /app' \
  -c 'CMD ["python3"]' \
  -m "wand-bed $variant (debootstrap sid, python $want)" \
  - "$tag" >/dev/null
echo "setup: [$variant] debootstrap ${boot} s, import $((SECONDS - start)) s"
