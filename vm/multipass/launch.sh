#!/bin/sh
# tapnet on Multipass: launches N Ubuntu VMs with user-data, reads their addresses, writes the
# cluster config (every node's address on Multipass' network) and makes each VM a node with
# vm/provision.sh, the provisioning every VM lab shares.
#
#   sh vm/multipass/launch.sh            # 2 nodes: tapnet-node1, tapnet-node2
#   sh vm/multipass/launch.sh 3          # 3 nodes
#   multipass exec tapnet-node1 -- sudo tapnet status
#   sh vm/multipass/launch.sh --down     # delete and purge them
#
# Settings, from the environment: TAPNET_PREFIX (instance names, default tapnet-node),
# TAPNET_IMAGE (default 24.04), TAPNET_BACKEND (tapnet, udp or vxlan; default tapnet),
# TAPNET_MEMORY (default 1G), TAPNET_CPUS (default 2). The cluster's secret is made once, in
# vm/multipass/.tapnet-secret; the cluster config is written to vm/multipass/cluster.yaml.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
project=$(cd "$here/../.." && pwd)
prefix=${TAPNET_PREFIX:-tapnet-node}
image=${TAPNET_IMAGE:-24.04}
backend=${TAPNET_BACKEND:-tapnet}
memory=${TAPNET_MEMORY:-1G}
cpus=${TAPNET_CPUS:-2}

die() {
  echo "launch.sh: $*" >&2
  exit 1
}

if [ "${1:-}" = --down ]; then
  names=$(multipass list --format csv | awk -F, -v p="$prefix" 'NR > 1 && $1 ~ "^"p"[0-9]+$" { print $1 }')
  if [ -z "$names" ]; then
    echo "no instance named $prefix<N>: nothing to do"
    exit 0
  fi
  # shellcheck disable=SC2086 # one word per instance
  multipass delete --purge $names
  echo "deleted: $(echo "$names" | tr '\n' ' ')"
  exit 0
fi

n=${1:-2}
case $n in ""|*[!0-9]*) die "the number of nodes: 1 to 50, not $n" ;; esac
if [ "$n" -lt 1 ] || [ "$n" -gt 50 ]; then die "the number of nodes: 1 to 50, not $n"; fi
case $backend in tapnet|udp|vxlan) ;; *) die "TAPNET_BACKEND=$backend: tapnet, udp or vxlan" ;; esac
command -v multipass >/dev/null || die "multipass is not installed (https://multipass.run)"

secret=$here/.tapnet-secret
if [ ! -f "$secret" ]; then
  (umask 077 && openssl rand -base64 32 >"$secret")
fi

# 1. The VMs, each with the user-data (packages).
i=1
while [ "$i" -le "$n" ]; do
  name=$prefix$i
  if multipass info "$name" >/dev/null 2>&1; then
    echo "$name is there already"
  else
    multipass launch "$image" --name "$name" --cpus "$cpus" --memory "$memory" --disk 8G --cloud-init "$here/user-data"
  fi
  i=$((i + 1))
done

# 2. Their addresses, and the cluster config.
config=$here/cluster.yaml
{
  echo "# Written by vm/multipass/launch.sh: the nodes at their addresses on Multipass' network."
  echo "backend:"
  echo "  type: $backend"
  [ "$backend" != tapnet ] || echo "  keyFile: /etc/tapnet/secret"
  echo "nodes:"
  i=1
  while [ "$i" -le "$n" ]; do
    # The first IPv4 address (several are joined by ';').
    addr=$(multipass info "$prefix$i" --format csv | awk -F, 'NR == 2 { split($3, a, ";"); print a[1] }')
    [ -n "$addr" ] || die "$prefix$i has no IPv4 address (multipass info $prefix$i)"
    echo "  - name: $prefix$i"
    echo "    address: $addr"
    i=$((i + 1))
  done
} >"$config.new"
mv "$config.new" "$config"
echo "cluster config: $config"

# 3. The project into each VM (no node_modules: built there), and the provisioning.
tarball=$(mktemp)
trap 'rm -f "$tarball"' EXIT
(cd "$project" && tar -czf "$tarball" bin src vm package.json package-lock.json tsconfig.json README.md)
i=1
while [ "$i" -le "$n" ]; do
  name=$prefix$i
  multipass exec "$name" -- cloud-init status --wait >/dev/null || die "$name: cloud-init did not finish (multipass exec $name -- cloud-init status --long)"
  multipass transfer "$tarball" "$name:/tmp/tapnet-src.tar.gz"
  multipass transfer "$config" "$name:/tmp/tapnet-cluster.yaml"
  multipass transfer "$secret" "$name:/tmp/tapnet-secret"
  multipass exec "$name" -- sudo sh -c "rm -rf /opt/tapnet-src && mkdir -p /opt/tapnet-src && tar -xzf /tmp/tapnet-src.tar.gz -C /opt/tapnet-src"
  multipass exec "$name" -- sudo sh /opt/tapnet-src/vm/provision.sh --src /opt/tapnet-src --node "$name" \
    --config /tmp/tapnet-cluster.yaml --secret-file /tmp/tapnet-secret
  multipass exec "$name" -- sudo rm -f /tmp/tapnet-secret /tmp/tapnet-src.tar.gz
  i=$((i + 1))
done
echo "up: $n node(s). Try: multipass exec ${prefix}1 -- sudo tapnet status"
