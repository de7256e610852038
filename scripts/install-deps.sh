#!/usr/bin/env sh
# Installs the Debian packages tapnet and its tests use, only those that are missing:
#   iproute2 (ip), util-linux (nsenter), iputils-ping (ping), iperf3, tcpdump, ethtool,
#   nftables (nft, for the masquerade rule), sockperf (latency, for tapnet bench),
#   etcd-server and etcd-client (etcd and etcdctl: the etcd store, lab up --store etcd).
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
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "tapnet needs these Debian packages:$missing (run as root: apt-get install$missing)" >&2
  exit 1
fi
echo "installing Debian packages:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
# iperf3 asks whether to start a daemon; the answer is no.
echo "iperf3 iperf3/start_daemon boolean false" | debconf-set-selections 2>/dev/null || true
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >&2
