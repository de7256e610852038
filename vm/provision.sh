#!/bin/sh
# Makes this machine a tapnet node: the one provisioning path of every VM lab (Vagrant,
# Multipass, the boot test's systemd-nspawn machines). Run as root on Debian 12 or Ubuntu 22.04+.
#
#   1. installs the Debian packages the switch uses (only those missing; none when all are there);
#   2. installs Node 20 from nodejs.org when the machine has no Node 20 or newer;
#   3. installs tapnet from a project folder into /opt/tapnet (its node_modules copied when they
#      were built for this machine's kind, else `npm ci --omit=dev`), and /usr/local/bin/tapnet;
#   4. writes /etc/tapnet/cluster.yaml (the static map of --nodes, or --config's file, or no
#      nodes with --store etcd://...), the cluster's secret in /etc/tapnet/secret, and
#      /etc/tapnet/tapnet.env: the node's name, its underlay device (found by the node's address,
#      not by a name: eth1, enp0s8 and ens4 are all seen) and the switch's other options;
#   5. installs, enables and (re)starts tapnet.service, and waits until the switch answers;
#   6. installs the CNI plugin and its conflist (tapnet cni install);
#   7. creates the demo pods: Pods <node>-demo1, <node>-demo2 ... on this node (tapnet apply),
#      which the store keeps, so they come back with the service after a stop and start; each
#      serves iperf3 on port 5201 (tapnet-demo@.service), for `tapnet check` on other nodes.
# Running it again updates all of it in place.
set -eu

PACKAGES="iproute2 util-linux nftables iputils-ping iperf3 procps ca-certificates curl xz-utils"
NODE_MAJOR=${NODE_MAJOR:-20}

usage() {
  cat <<'EOT'
Usage: provision.sh --node NAME (--nodes LIST | --config FILE | --store URL --address ADDR) [options]

  --node NAME        this node's name in the cluster (default: the short host name)
  --nodes LIST       the static map, every node: NAME=ADDRESS[,NAME=ADDRESS...] (pod CIDRs assigned in order)
  --config FILE      a cluster config to install as it is, instead of --nodes
  --store URL        etcd://HOST:PORT[,HOST:PORT]: the node leases its pod CIDR there (no static map)
  --address ADDR     this node's underlay address (default: its address in the map)
  --backend TYPE     tapnet (default), udp or vxlan
  --secret-file FILE the cluster's secret (tapnet backend), the same file on every node; or give it in
                     TAPNET_SECRET; without either, /etc/tapnet/secret is kept if it is there
  --insecure         the tapnet backend in the clear (the underlay is trusted)
  --src DIR          the tapnet project to install (default: the folder this script is in, one up)
  --pods N           demo pods to create on this node (default 2; 0 for none)
  --no-apt           install no package: fail, naming them, if some are missing
  --print-packages   print the Debian packages this script needs, and exit
EOT
}

die() {
  echo "provision: $*" >&2
  exit 1
}

say() {
  echo "provision: $*"
}

node_name=$(hostname -s 2>/dev/null || hostname)
nodes=""
config=""
store=""
address=""
backend=tapnet
secret_file=""
insecure=0
src=$(cd "$(dirname "$0")/.." && pwd)
pods=2
apt=1

while [ $# -gt 0 ]; do
  case $1 in
    --node) node_name=${2:?--node needs a name}; shift 2 ;;
    --nodes) nodes=${2:?--nodes needs a list}; shift 2 ;;
    --config) config=${2:?--config needs a file}; shift 2 ;;
    --store) store=${2:?--store needs a URL}; shift 2 ;;
    --address) address=${2:?--address needs an address}; shift 2 ;;
    --backend) backend=${2:?--backend needs a type}; shift 2 ;;
    --secret-file) secret_file=${2:?--secret-file needs a file}; shift 2 ;;
    --insecure) insecure=1; shift ;;
    --src) src=${2:?--src needs a folder}; shift 2 ;;
    --pods) pods=${2:?--pods needs a number}; shift 2 ;;
    --no-apt) apt=0; shift ;;
    --print-packages) echo "$PACKAGES"; exit 0 ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown option $1" ;;
  esac
done

[ "$(id -u)" = 0 ] || die "run me as root"
case $node_name in
  ""|*[!a-z0-9-]*|-*|*-) die "--node $node_name: lower-case letters, digits and '-' (a DNS label)" ;;
esac
case $backend in tapnet|udp|vxlan) ;; *) die "--backend $backend: tapnet, udp or vxlan" ;; esac
case $pods in ""|*[!0-9]*) die "--pods $pods: a number" ;; esac
{ [ -f "$src/package.json" ] && [ -f "$src/bin/tapnet.mjs" ]; } || die "--src $src: not a tapnet project (no package.json and bin/tapnet.mjs)"
sources=0
[ -n "$nodes" ] && sources=$((sources + 1))
[ -n "$config" ] && sources=$((sources + 1))
[ -n "$store" ] && [ -z "$config" ] && sources=$((sources + 1))
[ "$sources" = 1 ] || die "give one of --nodes LIST, --config FILE, --store URL (with --store, --config is allowed too)"
case $store in ""|etcd://*) ;; *) die "--store $store: etcd://HOST:PORT[,HOST:PORT]" ;; esac

# 1. Debian packages: only those missing, so that a machine that has them needs no mirror.
missing=""
for p in $PACKAGES; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing="$missing $p"
done
if [ -n "$missing" ]; then
  [ "$apt" = 1 ] || die "these packages are missing:$missing (--no-apt was given)"
  say "installing$missing"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  # shellcheck disable=SC2086 # one word per package
  apt-get install -y -q --no-install-recommends $missing >/dev/null
fi

# 2. Node 20 or newer. Debian 12 and Ubuntu 24.04 ship 18: then nodejs.org's build, checked
# against the release's SHASUMS256.txt.
node_major() {
  command -v node >/dev/null 2>&1 && node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0
}
if [ "$(node_major)" -lt "$NODE_MAJOR" ]; then
  case $(uname -m) in
    x86_64) arch=x64 ;;
    aarch64) arch=arm64 ;;
    *) die "no Node $NODE_MAJOR here, and nodejs.org has no build for $(uname -m): install Node $NODE_MAJOR+ first" ;;
  esac
  base=https://nodejs.org/dist/latest-v$NODE_MAJOR.x
  say "installing Node $NODE_MAJOR from $base"
  tmp=$(mktemp -d)
  curl -fsSL "$base/SHASUMS256.txt" -o "$tmp/SHASUMS256.txt" || die "cannot reach $base (install Node $NODE_MAJOR+ yourself)"
  tarball=$(awk -v a="linux-$arch.tar.xz" '$2 ~ a"$" { print $2; exit }' "$tmp/SHASUMS256.txt")
  [ -n "$tarball" ] || die "$base/SHASUMS256.txt names no linux-$arch.tar.xz"
  curl -fsSL "$base/$tarball" -o "$tmp/$tarball"
  (cd "$tmp" && grep " $tarball\$" SHASUMS256.txt | sha256sum -c - >/dev/null) || die "$tarball does not match its SHA-256"
  tar -xJf "$tmp/$tarball" -C /usr/local --strip-components=1 --no-same-owner
  rm -rf "$tmp"
  hash -r 2>/dev/null || true
  [ "$(node_major)" -ge "$NODE_MAJOR" ] || die "Node $NODE_MAJOR was installed in /usr/local/bin but is not the node on PATH"
fi
node_bin=$(command -v node)

# 3. tapnet into /opt/tapnet: the sources, and node_modules built for this kind of machine
# (esbuild is a binary per platform), else npm ci of the dependencies a node runs on: yaml,
# ip-num, koffi, esbuild (bin/tapnet.mjs bundles the TypeScript with it, into $dest/.build at
# the first run, and `tapnet cni install` the plugin) and tsx (what runs the sources without a
# bundle); not the test and build tools.
case $(uname -m) in x86_64) esb=linux-x64 ;; aarch64) esb=linux-arm64 ;; *) esb=none ;; esac
dest=/opt/tapnet
rm -rf "$dest.new"
mkdir -p "$dest.new"
(cd "$src" && tar -cf - bin src vm package.json package-lock.json tsconfig.json README.md) | tar -xf - -C "$dest.new"
if [ -d "$src/node_modules/@esbuild/$esb" ]; then
  say "installing tapnet from $src (its node_modules copied)"
  cp -a "$src/node_modules" "$dest.new/node_modules"
else
  say "installing tapnet from $src (npm ci --omit=dev)"
  (cd "$dest.new" && npm ci --omit=dev --no-audit --no-fund --loglevel=error >/dev/null) || die "npm ci failed in $dest.new"
fi
rm -rf "$dest.old"
[ -d "$dest" ] && mv "$dest" "$dest.old"
mv "$dest.new" "$dest"
rm -rf "$dest.old"
ln -sf "$dest/bin/tapnet.mjs" /usr/local/bin/tapnet
tapnet version >/dev/null || die "tapnet does not run: try $dest/bin/tapnet.mjs version"

# 4. The cluster config, the secret, the node's environment.
mkdir -p /etc/tapnet
chmod 755 /etc/tapnet
if [ -n "${TAPNET_SECRET:-}" ]; then
  (umask 077 && printf '%s\n' "$TAPNET_SECRET" >/etc/tapnet/secret)
elif [ -n "$secret_file" ]; then
  [ -r "$secret_file" ] || die "--secret-file $secret_file: cannot read it"
  (umask 077 && cp "$secret_file" /etc/tapnet/secret.new && mv /etc/tapnet/secret.new /etc/tapnet/secret)
fi
[ ! -f /etc/tapnet/secret ] || chmod 600 /etc/tapnet/secret

if [ -n "$config" ]; then
  [ -r "$config" ] || die "--config $config: cannot read it"
  [ "$(readlink -f "$config")" = /etc/tapnet/cluster.yaml ] || cp "$config" /etc/tapnet/cluster.yaml
else
  {
    echo "# Written by tapnet's vm/provision.sh: the cluster as this node knows it."
    echo "backend:"
    echo "  type: $backend"
    if [ "$backend" = tapnet ]; then
      if [ "$insecure" = 1 ]; then
        echo "  insecure: true"
      else
        [ -f /etc/tapnet/secret ] || die "the tapnet backend needs the cluster's secret: --secret-file FILE or TAPNET_SECRET (the same on every node; make one with: openssl rand -base64 32), or --insecure"
        echo "  keyFile: /etc/tapnet/secret"
      fi
    fi
    if [ -n "$nodes" ]; then
      echo "nodes:"
      for entry in $(echo "$nodes" | tr ',' ' '); do
        name=${entry%%=*}
        addr=${entry#*=}
        { [ -n "$name" ] && [ "$name" != "$entry" ] && [ -n "$addr" ]; } || die "--nodes: $entry is not NAME=ADDRESS"
        echo "  - name: $name"
        echo "    address: $addr"
      done
    else
      echo "nodes: []"
    fi
  } >/etc/tapnet/cluster.yaml.new
  mv /etc/tapnet/cluster.yaml.new /etc/tapnet/cluster.yaml
fi

if [ -z "$address" ]; then
  # This node's address in the map: the line after "- name: NODE" (the file this script writes,
  # or one in the README's shape).
  address=$(awk -v n="$node_name" '
    $1 == "-" && $2 == "name:" { this = ($3 == n || $3 == "\"" n "\"") ; next }
    this && $1 == "address:" { gsub(/"/, "", $2); print $2; exit }' /etc/tapnet/cluster.yaml)
fi
[ -n "$address" ] || die "node $node_name is not in /etc/tapnet/cluster.yaml: give its address with --address"
underlay=$(ip -o -4 addr show | awk -v a="$address" '{ split($4, x, "/"); if (x[1] == a) { print $2; exit } }')
[ -n "$underlay" ] || die "no interface here holds $address (node $node_name's address): is the private network up?"

opts="--netns-prefix tapnet-"
[ -z "$store" ] || opts="$opts --store $store --address $address"
cat >/etc/tapnet/tapnet.env <<EOT
# Written by tapnet's vm/provision.sh; read by tapnet.service.
TAPNET_NODE=$node_name
TAPNET_UNDERLAY_DEV=$underlay
TAPNET_OPTS=$opts
EOT
say "node $node_name, address $address on $underlay, backend $backend"

# 5. The service, and the demo pods' iperf3 servers (tapnet-demo@.service, enabled in 7).
cp "$dest/vm/tapnet.service" /etc/systemd/system/tapnet.service
cp "$dest/vm/tapnet-demo@.service" "/etc/systemd/system/tapnet-demo@.service"
systemctl daemon-reload
systemctl enable tapnet.service >/dev/null 2>&1
systemctl restart tapnet.service || {
  journalctl -u tapnet.service -n 20 --no-pager >&2 || true
  die "tapnet.service did not start (systemctl status tapnet; journalctl -u tapnet)"
}

# 6. The CNI plugin and its network (1.0.0: what podman 4 reads).
tapnet cni install --node "$node_name" --cni-version 1.0.0 | sed 's/^/provision: /'

# 7. The demo pods: objects of the store, made by this node's switch.
if [ "$pods" -gt 0 ]; then
  i=1
  while [ "$i" -le "$pods" ]; do
    printf -- '---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: %s-demo%s\n  labels:\n    app: tapnet-demo\nspec:\n  nodeName: %s\n  containers:\n    - name: demo\n' "$node_name" "$i" "$node_name"
    i=$((i + 1))
  done | tapnet apply --node "$node_name" -f - | sed 's/^/provision: /'
  i=1
  while [ "$i" -le 50 ]; do
    running=$(tapnet get pods -o wide --node "$node_name" 2>/dev/null | awk -v n="$node_name" '$1 ~ "^"n"-demo" && $2 == "Running" && $4 != "" && $4 != "<none>"' | wc -l)
    [ "$running" -ge "$pods" ] && break
    sleep 0.2
    i=$((i + 1))
  done
  [ "$running" -ge "$pods" ] || die "the demo pods did not come up (tapnet get pods -o wide; journalctl -u tapnet)"
  # Each serves iperf3 on port 5201 for as long as its namespace is there (tapnet-demo@.service).
  i=1
  while [ "$i" -le "$pods" ]; do
    unit=$(systemd-escape --template tapnet-demo@.service "tapnet-default-$node_name-demo$i")
    systemctl enable --now "$unit" >/dev/null 2>&1 || {
      journalctl -u "$unit" -n 10 --no-pager >&2 || true
      die "$unit did not start (systemctl status '$unit')"
    }
    i=$((i + 1))
  done
fi
tapnet get pods -o wide --node "$node_name" | sed 's/^/provision: /'
say "done: node $node_name is up (tapnet status; systemctl status tapnet; node binary $node_bin)"
