/**
 * `tapnet apply`, `tapnet delete` and `tapnet get`: the cluster's objects with kubectl's
 * verbs, flags and words. Manifests are read and checked whole before anything is sent (a bad
 * one refuses the input and the store is unchanged); the cluster is a store or a switch, as
 * cluster-client.ts picks it. apply.ts decides what changes, print.ts prints it.
 * Exit status: 0 when every object did what was asked, 1 when any failed, 2 for wrong usage.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { refsForDelete } from "../../cluster/apply.ts";
import { kindByName, kindInfo, resourceNames } from "../../cluster/kinds.ts";
import { parseManifests } from "../../cluster/manifest.ts";
import type { Kind, KubeObject, ObjectRef } from "../../cluster/objects.ts";
import { applyLine, deleteLine, formatObjects, kubectlName, formatObjectTable, noResourcesMessage, notFoundMessage, OUTPUT_FORMATS } from "../../cluster/print.ts";
import { choiceOption, UsageError, type Command, type OptionSpec, type Parsed } from "../args.ts";
import { clusterConnector, clusterOptions, type Connection } from "./cluster-client.ts";

/** A command that takes any number of positionals (main passes the bound to parse). */
export type ObjectsCommand = Command & { maxPositionals: number };

const out = (s: string) => process.stdout.write(s + "\n");
const err = (s: string) => process.stderr.write(s + "\n");

/** Where the commands read "-" from and what time ages count to. Replaceable in tests. */
export const objectsIo = {
  async stdin(): Promise<string> {
    let text = "";
    process.stdin.setEncoding("utf8");
    for await (const chunk of process.stdin) text += chunk as string;
    return text;
  },
  now: () => Date.now(),
};

const fileOption: OptionSpec = {
  type: "string", short: "f", value: "FILE", multiple: true,
  help: "a manifest (YAML or JSON, several documents), a directory of .yaml/.yml/.json files, or - for stdin; give -f again (or FILE,FILE) for several",
};

/** The -f values: repeated -f, and kubectl's comma-separated lists. */
function fileArgs(p: Parsed): string[] {
  const v = p.values.filename as unknown;
  const list = Array.isArray(v) ? (v as string[]) : typeof v === "string" ? [v] : [];
  return list.flatMap((x) => x.split(",")).filter((x) => x !== "");
}

/** Every object of every file, in order; throws on the first bad file, before anything is sent. */
export async function readManifests(files: string[]): Promise<KubeObject[]> {
  const objects: KubeObject[] = [];
  let stdinRead = false;
  for (const f of files) {
    if (f === "-") {
      if (stdinRead) throw new UsageError("-f - given twice: stdin can be read once");
      stdinRead = true;
      objects.push(...parseManifests(await objectsIo.stdin(), "stdin"));
      continue;
    }
    let isDir: boolean;
    try {
      isDir = statSync(f).isDirectory();
    } catch (e) {
      throw new UsageError(`-f ${f}: ${(e as NodeJS.ErrnoException).code === "ENOENT" ? "no such file or directory" : (e as Error).message}`);
    }
    const paths = isDir ? readdirSync(f).filter((n) => /\.(ya?ml|json)$/.test(n)).sort().map((n) => join(f, n)) : [f];
    for (const path of paths) objects.push(...parseManifests(readFileSync(path, "utf8"), path));
  }
  return objects;
}

async function withCluster<T>(p: Parsed, f: (c: Connection) => Promise<T>): Promise<T> {
  const c = await clusterConnector.connect(p);
  try {
    return await f(c);
  } finally {
    await c.close();
  }
}

/** A KIND argument: any name kubectl takes for it ("po", "pods", "Pod"). */
function kindArg(name: string): Kind {
  const kind = kindByName(name);
  if (!kind) throw new UsageError(`the server doesn't have a resource type "${name}" (tapnet keeps ${resourceNames().join(", ")})`);
  return kind;
}

const namespaceOption: OptionSpec = { type: "string", short: "n", value: "NS", help: "the namespace (default: default)" };

export const applyCommand: ObjectsCommand = {
  name: "apply",
  summary: "create or update objects from manifests (kubectl apply)",
  maxPositionals: 0,
  options: {
    filename: fileOption,
    ...clusterOptions,
    "service-cidr": { type: "string", value: "CIDR", help: "with --store: where new Services' ClusterIPs come from (default: 10.96.0.0/12; a switch uses its config's serviceCidr)" },
  },
  details: [
    "Every object is created if it is new, else updated with the manifest's spec, labels and annotations (its status and",
    "the fields tapnet fills in are kept); each prints created, configured or unchanged. The whole input is checked first:",
    "a manifest with an error, or an object in a namespace that neither exists nor is created earlier in the input,",
    "refuses it all and changes nothing. A Pod with spec.nodeName is started on that node. A new Service gets a",
    "ClusterIP from the service CIDR, and node ports (30000-32767) if it is a NodePort, unless it names its own.",
    "",
    "Examples:",
    "  tapnet apply -f pods.yaml",
    "  tapnet apply -f manifests/              every .yaml, .yml and .json file in it, by name",
    "  cat pods.yaml | tapnet apply -f -",
    "  tapnet apply -f ns.yaml,pods.yaml --store /run/tapnet/tapnet/store",
  ].join("\n"),
  async run(p) {
    const files = fileArgs(p);
    if (files.length === 0) throw new UsageError("apply needs -f FILE (see tapnet apply --help)");
    const objects = await readManifests(files);
    if (objects.length === 0) {
      err("error: no objects passed to apply");
      return 1;
    }
    const results = await withCluster(p, (c) => c.client.apply(objects));
    for (const r of results) (r.outcome === "failed" ? err : out)(applyLine(r));
    return results.some((r) => r.outcome === "failed") ? 1 : 0;
  },
};

/** The refs of `delete KIND NAME...` and `delete KIND/NAME...`. */
export function refsFromArgs(args: string[], namespace: string | undefined): ObjectRef[] {
  const ref = (kind: Kind, name: string): ObjectRef => {
    if (name === "") throw new UsageError(`an empty name in "${args.join(" ")}"`);
    return kindInfo(kind).namespaced ? { kind, namespace: namespace ?? "default", name } : { kind, name };
  };
  if (args.length && args.every((a) => a.includes("/"))) {
    return args.map((a) => ref(kindArg(a.slice(0, a.indexOf("/"))), a.slice(a.indexOf("/") + 1)));
  }
  if (args.some((a) => a.includes("/"))) throw new UsageError("there is no need to give a KIND when objects are given as KIND/NAME; give all as KIND/NAME or KIND NAME...");
  if (args.length === 0) throw new UsageError("delete needs -f FILE, or KIND NAME... (see tapnet delete --help)");
  const kind = kindArg(args[0]);
  if (args.length === 1) throw new UsageError(`delete ${args[0]}: name the objects to delete (tapnet delete ${args[0]} NAME...)`);
  return args.slice(1).map((n) => ref(kind, n));
}

export const deleteCommand: ObjectsCommand = {
  name: "delete",
  summary: "delete objects named in manifests or by kind and name (kubectl delete)",
  positionals: "[KIND NAME... | KIND/NAME...]",
  maxPositionals: Infinity,
  options: {
    filename: fileOption,
    namespace: namespaceOption,
    "ignore-not-found": { type: "boolean", help: "an object that does not exist is not an error" },
    ...clusterOptions,
  },
  details: [
    "With -f, the objects of the manifests are deleted last first, so that what is in a namespace goes before the",
    "namespace. Deleting a Namespace deletes everything in it; deleting a Pod stops it on its node.",
    "",
    "Examples:",
    "  tapnet delete -f pods.yaml",
    "  tapnet delete pod web db -n blue",
    "  tapnet delete svc/web netpol/deny-all",
  ].join("\n"),
  async run(p) {
    const files = fileArgs(p);
    let refs: ObjectRef[];
    if (files.length) {
      if (p.positionals.length) throw new UsageError("give -f FILE or KIND NAME..., not both");
      if (p.values.namespace !== undefined) throw new UsageError("-n is for delete KIND NAME...: the objects of a manifest name their namespace");
      refs = refsForDelete(await readManifests(files));
      if (refs.length === 0) {
        err("error: no objects passed to delete");
        return 1;
      }
    } else {
      refs = refsFromArgs(p.positionals, p.values.namespace as string | undefined);
    }
    const results = await withCluster(p, (c) => c.client.delete(refs));
    const ignore = p.values["ignore-not-found"] === true;
    let failed = false;
    for (const r of results) {
      if (r.outcome === "deleted") out(deleteLine(r));
      else if (r.outcome === "failed" || !ignore) {
        err(deleteLine(r));
        failed = true;
      }
    }
    return failed ? 1 : 0;
  },
};

export const getCommand: ObjectsCommand = {
  name: "get",
  summary: "list objects: nodes, pods, services, endpointslices, networkpolicies, namespaces (kubectl get)",
  positionals: "KIND [NAME...]",
  maxPositionals: Infinity,
  options: {
    namespace: namespaceOption,
    "all-namespaces": { type: "boolean", short: "A", help: "objects of every namespace, with a NAMESPACE column" },
    output: { type: "string", short: "o", value: "FORMAT", help: "wide (more columns), json, yaml or name (kind/name)" },
    ...clusterOptions,
  },
  details: [
    `KIND is any name kubectl takes: ${resourceNames().join(", ")}, or their singular and short names (po, svc, netpol, ns, no).`,
    "",
    "Examples:",
    "  tapnet get pods -A -o wide",
    "  tapnet get svc web -n blue -o yaml",
    "  tapnet get nodes",
  ].join("\n"),
  async run(p) {
    if (p.positionals.length === 0) throw new UsageError(`get needs a KIND: one of ${resourceNames().join(", ")} (see tapnet get --help)`);
    const kind = kindArg(p.positionals[0]);
    const names = p.positionals.slice(1);
    const format = p.values.output === undefined ? "table" : choiceOption(p, "output", [...OUTPUT_FORMATS, "name"] as const);
    const all = p.values["all-namespaces"] === true;
    const namespaced = kindInfo(kind).namespaced;
    if (all && p.values.namespace !== undefined) throw new UsageError("-A and -n: give one (-A lists every namespace)");
    if (all && names.length) throw new UsageError("a resource cannot be retrieved by name across all namespaces: give -n NS instead of -A");
    const namespace = !namespaced || all ? undefined : String(p.values.namespace ?? "default");
    const { objects, missing } = await withCluster(p, async (c) => {
      if (names.length === 0) return { objects: await c.client.list(kind, namespace), missing: [] as ObjectRef[] };
      const found: KubeObject[] = [];
      const missing: ObjectRef[] = [];
      for (const name of names) {
        const ref: ObjectRef = namespace === undefined ? { kind, name } : { kind, namespace, name };
        const o = await c.client.get(ref);
        if (o) found.push(o);
        else missing.push(ref);
      }
      return { objects: found, missing };
    });
    if (format === "json" || format === "yaml") {
      if (objects.length || names.length !== 1) out(formatObjects(objects, format, names.length === 1));
    } else if (format === "name") {
      for (const o of objects) out(`${kubectlName(kind)}/${o.metadata.name}`);
    } else if (objects.length) {
      out(formatObjectTable(kind, objects, { wide: format === "wide", allNamespaces: all, now: objectsIo.now() }));
    } else if (names.length === 0) {
      err(noResourcesMessage(kind, namespace));
    }
    for (const ref of missing) err(notFoundMessage(ref));
    return missing.length ? 1 : 0;
  },
};

export const OBJECT_COMMANDS: ObjectsCommand[] = [applyCommand, deleteCommand, getCommand];
