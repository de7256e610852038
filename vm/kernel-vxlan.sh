#!/bin/sh
# The kernel's own VXLAN between the same VMs, beside tapnet, to compare the two with iperf3.
#
#   sh /opt/tapnet/vm/kernel-vxlan.sh up      # on every node: vxcmp0, 10.99.0.<last octet of its address>/24
#   sh /opt/tapnet/vm/kernel-vxlan.sh down    # remove it
#
# `up` makes a VXLAN device vxcmp0 (VNI 4242, UDP port 4789: neither tapnet's 8287 nor the vxlan
# backend's 8472) on the node's underlay device, with an all-zeros FDB entry per other node (the
# kernel sends broadcasts to each, as flannel does without its learning), MTU the underlay's less
# 50, and the address 10.99.0.X/24, X the last octet of the node's own address. The node and its
# peers are read from /etc/tapnet/tapnet.env and /etc/tapnet/cluster.yaml (vm/provision.sh's);
# --peers ADDR,ADDR gives the other nodes' addresses instead (a cluster on etcd has no static map).
set -eu

DEV=vxcmp0

die() {
  echo "kernel-vxlan: $*" >&2
  exit 1
}

action=${1:-}
[ $# -gt 0 ] && shift
peers=""
while [ $# -gt 0 ]; do
  case $1 in
    --peers) peers=$(echo "${2:?--peers needs addresses}" | tr ',' ' '); shift 2 ;;
    *) die "unknown option $1 (usage: kernel-vxlan.sh up [--peers ADDR,ADDR] | down)" ;;
  esac
done

case $action in
  down)
    if ip link show "$DEV" >/dev/null 2>&1; then ip link del "$DEV"; echo "kernel-vxlan: $DEV removed"; else echo "kernel-vxlan: no $DEV"; fi
    exit 0
    ;;
  up) ;;
  *) die "usage: kernel-vxlan.sh up [--peers ADDR,ADDR] | down" ;;
esac

[ -r /etc/tapnet/tapnet.env ] || die "no /etc/tapnet/tapnet.env: provision this node first (vm/provision.sh)"
underlay=$(sed -n 's/^TAPNET_UNDERLAY_DEV=//p' /etc/tapnet/tapnet.env)
[ -n "$underlay" ] || die "/etc/tapnet/tapnet.env names no TAPNET_UNDERLAY_DEV"
address=$(ip -o -4 addr show dev "$underlay" | awk '{ split($4, x, "/"); print x[1]; exit }')
[ -n "$address" ] || die "$underlay has no IPv4 address"
if [ -z "$peers" ]; then
  peers=$(awk -v me="$address" '$1 == "address:" { gsub(/"/, "", $2); if ($2 != me) print $2 }' /etc/tapnet/cluster.yaml)
fi
[ -n "$peers" ] || die "no other node in /etc/tapnet/cluster.yaml: give --peers ADDR,ADDR"
mtu=$(ip -o link show dev "$underlay" | awk '{ for (i = 1; i < NF; i++) if ($i == "mtu") { print $(i + 1) - 50; exit } }')

ip link del "$DEV" 2>/dev/null || true
ip link add "$DEV" type vxlan id 4242 dstport 4789 local "$address" dev "$underlay" nolearning
for p in $peers; do
  bridge fdb append 00:00:00:00:00:00 dev "$DEV" dst "$p"
done
ip link set "$DEV" mtu "$mtu"
ip addr add "10.99.0.${address##*.}/24" dev "$DEV"
ip link set "$DEV" up
echo "kernel-vxlan: $DEV up, 10.99.0.${address##*.}/24 over $underlay, peers: $(echo "$peers" | tr '\n' ' ')"
