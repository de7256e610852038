#!/usr/bin/env sh
# Installs the Debian packages tapnet and its tests use, only those that are missing:
#   iproute2 (ip), util-linux (nsenter), iputils-ping (ping), iperf3, tcpdump, ethtool,
#   nftables (nft, for the masquerade rule), sockperf (latency, for tapnet bench),
#   etcd-server and etcd-client (etcd and etcdctl: the etcd store, lab up --store etcd),
#   podman, runc, busybox-static and containernetworking-plugins (the CNI plugin's test with a
#   real runtime: podman runs the plugin, runc the containers, busybox-static is the image,
#   portmap is chained after tapnet), tshark (reads back the trace's pcapng and runs the
#   tapnet backend's Lua dissector in the tests), chromium (the browser the test of
#   `tapnet web` drives headless, through the devDependency puppeteer-core).
#   No service of these packages is started.
set -eu
missing=""
need() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ] || missing="$missing $2"; }
need ip iproute2
need nsenter util-linux
need ping iputils-ping
need iperf3 iperf3
need tcpdump tcpdump
need ethtool ethtool
need nft nftables
need sockperf sockperf
need etcd etcd-server
need etcdctl etcd-client
need podman podman
need runc runc
need tshark tshark
need chromium chromium
# The image needs a static busybox: Debian's busybox (dynamic) gives the same command.
dpkg-query -W -f '${Status}' busybox-static 2>/dev/null | grep -q "ok installed" || missing="$missing busybox-static"
[ -x /usr/lib/cni/portmap ] || missing="$missing containernetworking-plugins"
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "tapnet needs these Debian packages:$missing (run as root: apt-get install$missing)" >&2
  exit 1
fi
echo "installing Debian packages:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
# iperf3 asks whether to start a daemon, wireshark-common whether to make dumpcap setuid; no to both.
echo "iperf3 iperf3/start_daemon boolean false" | debconf-set-selections 2>/dev/null || true
echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections 2>/dev/null || true
# No package starts a service (podman's socket and timers, etcd): a policy-rc.d says no while
# apt runs, unless the machine has one of its own.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\n# tapnet install-deps: no service starts while packages are installed\nexit 101\n' >"$policy"
  chmod 755 "$policy"
  trap 'rm -f "$policy"' EXIT
fi
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >&2
