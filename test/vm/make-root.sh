#!/bin/sh
# The Debian 12 root the boot test's machines boot: debootstrap once, keep it.
# Usage: make-root.sh DIR PACKAGE...
# Makes DIR (a minimal Debian 12 with systemd as init, and the packages named) unless it is
# there already: built in DIR.tmp and renamed into place only when whole, so an interrupted run
# leaves nothing that looks finished. The mirror is this machine's own (its apt sources).
set -eu
dir=$1
shift
[ -d "$dir" ] && exit 0
mirror=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n 1)
[ -n "$mirror" ] || mirror=$(awk '$1 == "deb" { print $2; exit }' /etc/apt/sources.list 2>/dev/null)
[ -n "$mirror" ] || mirror=http://deb.debian.org/debian
include=$(printf '%s,' systemd systemd-sysv dbus "$@")
rm -rf "$dir.tmp"
mkdir -p "$(dirname "$dir")"
nice -n 10 debootstrap --variant=minbase --include="${include%,}" bookworm "$dir.tmp" "$mirror" >"$dir.log" 2>&1 || {
  echo "debootstrap failed (its log: $dir.log)" >&2
  tail -n 5 "$dir.log" >&2
  rm -rf "$dir.tmp"
  exit 1
}
# debootstrap copies this machine's /etc/hostname: without it, each machine keeps the name nspawn gives it.
rm -f "$dir.tmp/etc/hostname"
mv "$dir.tmp" "$dir"
