/**
 * The field tables of Pod and Node (their spec and status), as the API server checks them, for
 * validate.ts. A Pod needs at least one container with a name; container ports get protocol TCP
 * when left out. The container fields a pod network has no use for but manifests carry (image,
 * command, args, env, resources, ...) are accepted and kept as written, checked for their shape
 * only. A Pod's and a Node's `status` is tapnet's to write (the pod's IP, the node's address), so
 * it is checked and kept; apply.ts decides whether a user may set it.
 */
import {
  bool, cidr, dnsLabel, dnsSubdomain, int, ipv4, list, object, oneOf, opaque, portName, str, unique, type Schema,
} from "./validate-schema.ts";

export const protocol = oneOf(["TCP", "UDP", "SCTP"]);
const TCP = (): string => "TCP";

const containerPort = object({
  name: str(portName),
  containerPort: { schema: int(1, 65535), required: true },
  protocol: { schema: protocol, default: TCP },
});

const envVar = object({
  name: { schema: str((s) => (s === "" ? "must not be empty" : undefined)), required: true },
  value: str(),
  valueFrom: opaque("mapping"),
});

const container = object(
  {
    name: { schema: str(dnsLabel), required: true },
    image: str(),
    imagePullPolicy: oneOf(["Always", "IfNotPresent", "Never"]),
    command: list(str()),
    args: list(str()),
    workingDir: str(),
    env: list(envVar),
    ports: list(containerPort),
    resources: opaque("mapping"),
  },
  (out, path, f) => unique(out.ports, `${path}.ports`, "name", f, "port name"),
);

/** A pod in the host's network namespace has no pod network: tapnet has nothing to give it. */
const hostNetwork: Schema = (v, path, f) =>
  v === true ? f.add(path, "tapnet gives every pod its own network namespace; hostNetwork pods are not supported") : bool()(v, path, f);

export const podSpec = object(
  {
    nodeName: str(dnsSubdomain),
    containers: { schema: list(container, { min: 1 }), required: true },
    restartPolicy: oneOf(["Always", "OnFailure", "Never"]),
    terminationGracePeriodSeconds: int(0, 2 ** 31 - 1),
    hostNetwork,
  },
  (out, path, f) => unique(out.containers, `${path}.containers`, "name", f, "container name"),
);

export const podStatus = object({
  phase: oneOf(["Pending", "Running", "Failed"]),
  podIP: str(ipv4),
  podIPs: list(object({ ip: { schema: str(ipv4), required: true } }), { max: 1 }),
  hostIP: str(ipv4),
  message: str(),
});

/**
 * A Node's spec. podCIDR and podCIDRs are kept in step as the API server does: either one fills
 * the other, and when both are given the first of podCIDRs must be podCIDR. IPv4 only: one CIDR.
 */
export const nodeSpec = object(
  {
    podCIDR: str(cidr),
    podCIDRs: list(str(cidr), { max: 1 }),
    unschedulable: bool(),
    providerID: str(),
  },
  (out, path, f, raw) => {
    const one = out.podCIDR as string | undefined;
    const many = out.podCIDRs as string[] | undefined;
    if (one !== undefined && many !== undefined && many.length > 0 && many[0] !== one) {
      f.add(`${path}.podCIDRs[0]`, `must be the same as spec.podCIDR ("${one}"), not "${many[0]}"`);
    } else if (one !== undefined && raw.podCIDRs == null) out.podCIDRs = [one];
    else if (one === undefined && raw.podCIDR == null && many !== undefined && many.length > 0) out.podCIDR = many[0];
  },
);

const nodeAddress = object(
  {
    type: { schema: oneOf(["InternalIP", "Hostname"]), required: true },
    address: { schema: str(), required: true },
  },
  (out, path, f) => {
    if (out.type === "InternalIP" && typeof out.address === "string") {
      const bad = ipv4(out.address);
      if (bad) f.add(`${path}.address`, bad);
    }
  },
);

export const nodeStatus = object({
  addresses: list(nodeAddress),
  conditions: list(
    object({
      type: { schema: oneOf(["Ready"]), required: true },
      status: { schema: oneOf(["True", "False", "Unknown"]), required: true },
      reason: str(),
      lastHeartbeatTime: str(),
    }),
  ),
});
