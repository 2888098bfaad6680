#!/bin/bash
# Fetch one Debian kernel image package with `apt-get download` into the VM cache (outside the repo)
# and unpack its vmlinuz, modules and System.map. Idempotent: a kernel already unpacked is kept.
#
#   vm/fetch-kernel.sh bookworm 6.1     -> the current bookworm 6.1 kernel (linux-image-amd64)
#   vm/fetch-kernel.sh bookworm 6.12    -> the newest linux-image-6.12.*+deb12-amd64
#   vm/fetch-kernel.sh bullseye 5.10    -> bullseye's linux-image-amd64, via a private apt config
#
# Prints the unpacked kernel directory (…/kernels/<release>) on stdout.
set -euo pipefail
suite=$1; series=$2
CACHE=${PINWATCH_VM_CACHE:-$HOME/.cache/pinwatch/vm}
mkdir -p "$CACHE/debs" "$CACHE/kernels"
log() { echo "fetch-kernel: $*" >&2; }

apt_opts=()
if [ "$suite" = bullseye ]; then
  # Bullseye is not in this host's sources: use a private sources list + state dir so the host's
  # apt configuration is never touched.
  A="$CACHE/apt-bullseye"
  mkdir -p "$A/lists/partial" "$A/archives/partial"
  cat > "$A/sources.list" <<SRC
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bullseye main
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian-security bullseye-security main
SRC
  apt_opts=(-o "Dir::Etc::SourceList=$A/sources.list" -o "Dir::Etc::SourceParts=/nonexistent"
            -o "Dir::State::Lists=$A/lists" -o "Dir::Cache::Archives=$A/archives"
            -o "Dir::Cache::pkgcache=$A/pkgcache.bin" -o "Dir::Cache::srcpkgcache=$A/srcpkgcache.bin"
            -o "Dir::State::status=/dev/null")
  if [ ! -s "$A/pkgcache.bin" ] || [ -n "$(find "$A/lists" -maxdepth 1 -name '*Packages*' -mtime +7)" ] \
     || [ -z "$(ls "$A/lists" | grep Packages || true)" ]; then
    log "apt-get update (bullseye, private lists)"
    apt-get "${apt_opts[@]}" update -qq >&2
  fi
fi

pick_package() {
  case "$series" in
    6.12) apt-cache "${apt_opts[@]}" pkgnames linux-image-6.12. | grep -E '^linux-image-6\.12\.[0-9]+\+deb12-amd64$' | sort -V | tail -1 ;;
    *)    apt-cache "${apt_opts[@]}" depends linux-image-amd64 | awk '/Depends: linux-image-/ {print $2; exit}' ;;
  esac
}
pkg=$(pick_package)
[ -n "$pkg" ] || { log "no package for $suite $series"; exit 1; }
release=${pkg#linux-image-}
dest="$CACHE/kernels/$release"
if [ -s "$dest/vmlinuz" ] && [ -d "$dest/lib/modules/$release" ]; then
  echo "$dest"; exit 0
fi
log "downloading $pkg"
( cd "$CACHE/debs" && apt-get "${apt_opts[@]}" download -qq "$pkg" >&2 )
deb=$(ls -t "$CACHE/debs/${pkg}_"*.deb | head -1)
rm -rf "$dest.tmp"; mkdir -p "$dest.tmp"
dpkg-deb -x "$deb" "$dest.tmp"
cp "$dest.tmp/boot/vmlinuz-$release" "$dest.tmp/vmlinuz"
[ -f "$dest.tmp/boot/System.map-$release" ] && cp "$dest.tmp/boot/System.map-$release" "$dest.tmp/System.map"
[ -f "$dest.tmp/boot/config-$release" ] && cp "$dest.tmp/boot/config-$release" "$dest.tmp/config"
# usrmerge layouts put modules under usr/lib/modules
if [ ! -d "$dest.tmp/lib/modules" ] && [ -d "$dest.tmp/usr/lib/modules" ]; then
  mkdir -p "$dest.tmp/lib"; mv "$dest.tmp/usr/lib/modules" "$dest.tmp/lib/modules"
fi
depmod -b "$dest.tmp" "$release" >&2 || true
rm -rf "$dest"; mv "$dest.tmp" "$dest"
echo "$release" > "$dest/release"
echo "$dest"
