/**
 * The Kubernetes objects a pod network needs, in their own shape (the API's field names, as
 * `kubectl get -o yaml` prints them): Namespace, Node, Pod, Service, EndpointSlice,
 * NetworkPolicy. Plain data: what manifests hold, what the stores keep, what the CLI prints.
 * validate.ts checks them and fills the API server's defaults; kinds.ts names them.
 */

export const KINDS = ["Namespace", "Node", "Pod", "Service", "EndpointSlice", "NetworkPolicy"] as const;
export type Kind = (typeof KINDS)[number];

export interface ObjectMeta {
  name: string;
  /** Namespaced kinds only; "default" when a manifest leaves it out. */
  namespace?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  /** Set by the store. */
  uid?: string;
  resourceVersion?: string;
  creationTimestamp?: string;
}

export interface KubeObject {
  apiVersion: string;
  kind: Kind;
  metadata: ObjectMeta;
  spec?: unknown;
  status?: unknown;
}

/** Which object: its kind, namespace (namespaced kinds) and name. */
export interface ObjectRef {
  kind: Kind;
  namespace?: string;
  name: string;
}

export interface LabelSelectorRequirement {
  key: string;
  operator: "In" | "NotIn" | "Exists" | "DoesNotExist";
  values?: string[];
}

export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: LabelSelectorRequirement[];
}

export type Protocol = "TCP" | "UDP" | "SCTP";

export interface Namespace extends KubeObject {
  kind: "Namespace";
  spec?: Record<string, never>;
}

export interface Node extends KubeObject {
  kind: "Node";
  /** podCIDR and podCIDRs are kept in step: validation fills either from the other. */
  spec: { podCIDR?: string; podCIDRs?: string[]; unschedulable?: boolean; providerID?: string };
  status?: {
    addresses?: { type: "InternalIP" | "Hostname"; address: string }[];
    conditions?: { type: "Ready"; status: "True" | "False" | "Unknown"; reason?: string; lastHeartbeatTime?: string }[];
  };
}

export interface ContainerPort {
  name?: string;
  containerPort: number;
  protocol: Protocol;
}

/** A container. tapnet runs none; it keeps what manifests carry and acts on `ports` only. */
export interface Container {
  name: string;
  image?: string;
  imagePullPolicy?: "Always" | "IfNotPresent" | "Never";
  command?: string[];
  args?: string[];
  workingDir?: string;
  env?: { name: string; value?: string; valueFrom?: Record<string, unknown> }[];
  ports?: ContainerPort[];
  resources?: Record<string, unknown>;
}

export interface Pod extends KubeObject {
  kind: "Pod";
  spec: {
    nodeName?: string;
    containers: Container[];
    restartPolicy?: "Always" | "OnFailure" | "Never";
    terminationGracePeriodSeconds?: number;
    /** Only false: tapnet gives every pod its own network namespace. */
    hostNetwork?: false;
  };
  status?: {
    phase?: "Pending" | "Running" | "Failed";
    podIP?: string;
    podIPs?: { ip: string }[];
    hostIP?: string;
    message?: string;
  };
}

export interface ServicePort {
  name?: string;
  protocol: Protocol;
  port: number;
  /** A number, or the name of a container port. */
  targetPort: number | string;
  nodePort?: number;
}

export interface Service extends KubeObject {
  kind: "Service";
  spec: {
    type: "ClusterIP" | "NodePort";
    selector?: Record<string, string>;
    /** An IPv4 address or "None" (headless); absent until one is allocated. */
    clusterIP?: string;
    /** [clusterIP], kept in step with it. */
    clusterIPs?: string[];
    ipFamilies?: "IPv4"[];
    ipFamilyPolicy?: "SingleStack";
    internalTrafficPolicy?: "Cluster" | "Local";
    /** At least one, except on a headless Service. */
    ports: ServicePort[];
    sessionAffinity: "None" | "ClientIP";
    /** With ClientIP: how long a client stays with its endpoint (10800 s by default). */
    sessionAffinityConfig?: { clientIP?: { timeoutSeconds?: number } };
  };
}

export interface Endpoint {
  addresses: string[];
  conditions?: { ready?: boolean; serving?: boolean; terminating?: boolean };
  nodeName?: string;
  hostname?: string;
  zone?: string;
  targetRef?: { kind: "Pod"; namespace?: string; name: string; uid?: string };
}

export interface EndpointSlice extends KubeObject {
  kind: "EndpointSlice";
  addressType: "IPv4";
  endpoints: Endpoint[];
  /** Validation fills name "" and protocol TCP, as the API server does. */
  ports?: { name?: string; protocol?: Protocol; port?: number; appProtocol?: string }[];
}

export interface NetworkPolicyPort {
  protocol: Protocol;
  /** A number or a named port; absent: every port. */
  port?: number | string;
  endPort?: number;
}

export interface NetworkPolicyPeer {
  podSelector?: LabelSelector;
  namespaceSelector?: LabelSelector;
  ipBlock?: { cidr: string; except?: string[] };
}

export interface NetworkPolicy extends KubeObject {
  kind: "NetworkPolicy";
  spec: {
    podSelector: LabelSelector;
    policyTypes: ("Ingress" | "Egress")[];
    ingress?: { from?: NetworkPolicyPeer[]; ports?: NetworkPolicyPort[] }[];
    egress?: { to?: NetworkPolicyPeer[]; ports?: NetworkPolicyPort[] }[];
  };
}

/** Annotations tapnet writes. */
export const ANNOTATIONS = {
  /** On a Pod: the network namespace tapnet attached it in. */
  netns: "tapnet.dev/netns",
  /** On a Pod: the interface name inside it. */
  ifname: "tapnet.dev/ifname",
  /** On a Pod made by `tapnet pod add`: "pod-add" (else made by apply, or next the CNI plugin). */
  source: "tapnet.dev/source",
  /** On a Node: its VTEP MAC (vxlan backend). */
  vtepMac: "tapnet.dev/vtep-mac",
} as const;

export function refOf(o: KubeObject): ObjectRef {
  return { kind: o.kind, ...(o.metadata.namespace !== undefined ? { namespace: o.metadata.namespace } : {}), name: o.metadata.name };
}

/** "pod/web -n default", as kubectl names an object in its messages. */
export function describeRef(r: ObjectRef): string {
  return `${r.kind.toLowerCase()}/${r.name}${r.namespace ? ` -n ${r.namespace}` : ""}`;
}
