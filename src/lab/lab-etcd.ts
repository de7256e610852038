/**
 * The lab's etcd (`lab up --store etcd`): one real etcd member in the underlay namespace, on
 * an address of its own on br0 (192.168.56.2, next to the nodes' 192.168.56.<10+i>), so every
 * node's switch reaches it over the underlay as a VM would reach its cluster's etcd. Its data
 * directory and log are in the lab's directory (/run/tapnet/<prefix>/etcd, etcd.log).
 *
 * The journal holds its data directory before it starts and its pid as soon as it is known;
 * `lab down` stops it by that pid, after checking the pid is still an etcd with our data
 * directory. Should the lab have died between the start and the pid (etcd-server.ts waits for
 * it to answer before it returns), the process whose arguments name our data directory, which
 * no other process can, is ours.
 */
import { readdirSync, readFileSync } from "node:fs";
import { ip } from "../node/exec.ts";
import { startEtcd, stopEtcd } from "./etcd-server.ts";
import { ETCD_ADDRESS, ETCD_CLIENT_PORT, ETCD_PEER_PORT, LabError, readLabState, saveLabState, type LabState } from "./plan.ts";

function argv(pid: number): string[] | undefined {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter(Boolean);
  } catch {
    return undefined;
  }
}

/** Is `pid` an etcd whose data directory is `dataDir`? */
export function isOurEtcd(pid: number, dataDir: string): boolean {
  const args = argv(pid);
  if (!args?.length || !/(^|\/)etcd$/.test(args[0])) return false;
  return args.some((a, i) => a === `--data-dir=${dataDir}` || (a === "--data-dir" && args[i + 1] === dataDir));
}

/** Starts the lab's etcd in the underlay namespace; its pid goes to the journal. */
export async function startLabEtcd(state: LabState, say: (l: string) => void): Promise<void> {
  const s = state.store;
  if (s?.type !== "etcd" || !s.etcdDataDir || !s.etcdLog) throw new LabError("startLabEtcd: the lab's store is not etcd");
  const underlay = `${state.prefix}-underlay`;
  await ip("-n", underlay, "addr", "replace", `${ETCD_ADDRESS}/24`, "dev", "br0"); // replace: a restarted etcd finds it there
  const { pid } = await startEtcd({
    name: state.prefix, dataDir: s.etcdDataDir, logFile: s.etcdLog, netns: underlay,
    clientUrl: `http://${ETCD_ADDRESS}:${ETCD_CLIENT_PORT}`, peerUrl: `http://${ETCD_ADDRESS}:${ETCD_PEER_PORT}`,
  });
  s.etcdPid = pid;
  saveLabState(state);
  say(`etcd: pid ${pid}, on ${ETCD_ADDRESS}:${ETCD_CLIENT_PORT} in ${underlay}, data in ${s.etcdDataDir}, log ${s.etcdLog}`);
}

/** Stops the lab's etcd, if it runs; by its journaled pid, else by its data directory. */
export async function stopLabEtcd(state: LabState, say: (l: string) => void): Promise<void> {
  const s = state.store;
  if (s?.type !== "etcd" || !s.etcdDataDir) return;
  const dataDir = s.etcdDataDir;
  let pid = s.etcdPid && isOurEtcd(s.etcdPid, dataDir) ? s.etcdPid : 0;
  if (!pid) {
    for (const d of readdirSync("/proc")) {
      if (/^\d+$/.test(d) && isOurEtcd(Number(d), dataDir)) pid = Number(d);
    }
  }
  if (!pid) return;
  await stopEtcd(pid);
  say(`etcd: pid ${pid} stopped`);
}

/** `lab etcd stop|start`: takes the lab's etcd away and brings it back (same data), to watch the switches cope. */
export async function labEtcd(prefix: string, action: "stop" | "start", say: (l: string) => void): Promise<void> {
  const state = readLabState(prefix);
  if (!state) throw new LabError(`no lab ${prefix} is up`);
  if (state.store?.type !== "etcd") throw new LabError(`lab ${prefix} keeps its state in ${state.store?.type ?? "no"} store, not etcd (lab up --store etcd)`);
  const s = state.store;
  const running = !!s.etcdPid && !!s.etcdDataDir && isOurEtcd(s.etcdPid, s.etcdDataDir);
  if (action === "stop") {
    if (!running) return say("etcd: not running");
    await stopLabEtcd(state, say);
    s.etcdPid = 0;
    saveLabState(state);
    return;
  }
  if (running) return say(`etcd: already running, pid ${s.etcdPid}`);
  await startLabEtcd(state, say);
}
