// The datapath loop over an in-memory libc, as datapath.test.ts and datapath-order.test.ts drive
// it: a Datapath on a FakeLibc, the control thread's side of its command port, and helpers to run
// rounds, add ports and read counters. Each test file calls closeOpened() after each test.
import { MessageChannel, receiveMessageOnPort } from "node:worker_threads";
import { UDP_GRO, UDP_SEGMENT } from "../../src/io/udp.ts";
import { Counters } from "../../src/switch/counters.ts";
import { Datapath } from "../../src/switch/datapath.ts";
import { Ctrl, CTRL_WORDS, type Command, type Reply } from "../../src/switch/commands.ts";
import type { RouterConfig } from "../../src/switch/state.ts";
import { FakeLibc } from "../support/fake-libc.ts";

export const MAX_PORTS = 8;
export const TUNNEL_ROW = MAX_PORTS - 1;
export const UDP_FD = 3;
export const TUNNEL_PORT = 8472;
export const FD = [10, 11, 12, 13, 14, 15, 16];

export interface Options {
  router?: RouterConfig;
  /** The kernel refuses UDP_SEGMENT, or UDP_GRO. */
  noGso?: boolean;
  noGro?: boolean;
  offloads?: boolean;
  batch?: number;
  slotSize?: number;
  ageingSeconds?: number;
  /** The tunnel socket's fd (3 unless said); `false`: a router config but no tunnel socket. */
  udpFd?: number | false;
  /** A wake-up eventfd, written to after each command as the control thread does. */
  wake?: boolean;
}

const opened: { close(): void }[] = [];

/** Closes the message ports the last test's setups opened. */
export function closeOpened(): void {
  for (const p of opened.splice(0)) p.close();
}

export function setup(o: Options = {}) {
  const udpFd = o.udpFd === false ? UDP_FD : o.udpFd ?? UDP_FD;
  const libc = new FakeLibc(udpFd);
  if (o.noGso) libc.udp.refused.add(UDP_SEGMENT);
  if (o.noGro) libc.udp.refused.add(UDP_GRO);
  const { port1, port2 } = new MessageChannel();
  opened.push(port1, port2);
  const ctrlMem = new SharedArrayBuffer(CTRL_WORDS * 4);
  const ctrl = new Int32Array(ctrlMem);
  const counters = new Counters(MAX_PORTS);
  const wakeFd = o.wake ? libc.eventfd(0) : undefined;
  const dp = new Datapath(libc, {
    ctrl: ctrlMem, counters: counters.buffer, maxPorts: MAX_PORTS, port: port2,
    fdb: { maxEntries: 64, ageingSeconds: o.ageingSeconds ?? 300 },
    batch: o.batch ?? 64, slotSize: o.slotSize ?? 4096,
    ...(o.router ? { router: o.router } : {}),
    ...(o.router && o.udpFd !== false ? { tunnel: { fd: udpFd, port: TUNNEL_PORT } } : {}),
    ...(o.offloads !== undefined ? { offloads: o.offloads } : {}),
    ...(wakeFd !== undefined ? { wakeFd } : {}),
  });
  /** Sends a command as the control thread does: the message, then the sequence number moved. */
  const command = (cmd: Command) => {
    port1.postMessage(cmd);
    Atomics.add(ctrl, Ctrl.CmdSeq, 1);
    if (wakeFd !== undefined) libc.write(wakeFd, new Uint8Array([1, 0, 0, 0, 0, 0, 0, 0]), 8);
  };
  /** Posts a command without moving the sequence number. */
  const post = (cmd: Command) => port1.postMessage(cmd);
  const replies = (): Reply[] => {
    const out: Reply[] = [];
    for (let m = receiveMessageOnPort(port1); m; m = receiveMessageOnPort(port1)) out.push(m.message as Reply);
    return out;
  };
  /**
   * Runs the loop for `n` rounds: the fake poll raises the stop flag in the n-th. `duringFirstPoll`
   * is sent while the first poll waits (after it has seen what is ready, as a real poll woken by
   * a frame would have).
   */
  const rounds = (n = 1, duringFirstPoll: Command[] = []) => {
    let polls = 0;
    libc.onPoll = () => {
      if (++polls === 1) for (const c of duringFirstPoll) command(c);
      if (polls === n) Atomics.store(ctrl, Ctrl.Stop, 1);
    };
    Atomics.store(ctrl, Ctrl.Stop, 0);
    dp.run();
    libc.onPoll = undefined;
  };
  /** Attaches TAP ports 0..n-1 (fds FD[0..]), the first as the gateway when `gateway`. */
  const ports = (n: number, gateway = false) => {
    for (let p = 0; p < n; p++) {
      libc.tap(FD[p]);
      command({ op: "add", port: p, fd: FD[p], role: gateway && p === 0 ? "gateway" : "pod" });
    }
  };
  const tap = (p: number) => libc.tap(FD[p]);
  const drops = (row: number) => Object.fromEntries(Object.entries(counters.portSnapshot(row)).filter(([k]) => k.startsWith("drop_")));
  return { libc, dp, ctrl, counters, wakeFd, command, post, replies, rounds, ports, tap, drops, udp: libc.udp };
}

