/**
 * The lab's supervisor: one small process per switch node, which keeps that node's switch
 * running the way systemd's `Restart=always` keeps a service running, and what `lab status`
 * reads to show the live switch and its restarts. supervise.ts is its executable; nodes.ts
 * starts it (detached, in the host's namespace) and stops it with SIGTERM.
 *
 * It runs the switch's command (nsenter into the node's namespace, `tapnet switch ...`) as its
 * child, and, once that switch answers on its control socket, a second one: a standby
 * (TAPNET_STANDBY=1), loaded and waiting on the node's lock (node/node-lock.ts). When the
 * running switch dies, however it dies, the kernel frees the lock and the standby starts within
 * 10 ms, taking the pods over (node/adopt.ts) without the seconds a runtime spends loading
 * tapnet; the supervisor counts a restart and, once the new switch answers and a second more
 * has passed, starts the next standby. With no standby ready, it starts a switch at once.
 *
 * Like systemd's StartLimitBurst, a switch that dies 5 times within 10 s is not started again:
 * the supervisor says "failed" in its status and exits (`lab up` or `lab node start` start it
 * again). A standby that dies 5 times within 10 s is given up the same way, the running
 * switch left alone.
 *
 * SIGTERM (lab down, lab node stop): the standby first (it must not take over), then the
 * switch, which stops cleanly; SIGKILL for what is left after 10 s. Then it exits.
 *
 * Its status file (<lab>/<node>.supervisor.json) is rewritten whole at each change; its own
 * lines go to the node's log, among its switches' (JSON lines, msg "supervisor: ...").
 */
import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, openSync, readFileSync, renameSync, writeFileSync, writeSync } from "node:fs";
import { isAlive } from "../node/rpc.ts";

export interface SupervisorStatus {
  /** The supervisor's own pid. */
  pid: number;
  node: string;
  state: "running" | "failed" | "stopping" | "stopped";
  /** The switch holding the node now (or starting to), 0 if none. */
  switch: number;
  /** The warm spare waiting on the node's lock, 0 if none. */
  standby: number;
  /** How many times a running switch died and another took its place. */
  restarts: number;
  lastExit?: { pid: number; how: string; at: string };
  /** Why it failed, or gave up on standbys. */
  message?: string;
  updatedAt: string;
}

export interface SuperviseOptions {
  node: string;
  /** The switch's command line. */
  command: string[];
  /** Its control socket: a switch is ready once it answers there. */
  control: string;
  statusFile: string;
  /** The node's log, appended to. */
  log: string;
  /** Working directory of the switches. */
  cwd: string;
}

export const START_LIMIT_BURST = 5;
export const START_LIMIT_INTERVAL_MS = 10_000;
const STANDBY_DELAY_MS = 1_000;
const STOP_TIMEOUT_MS = 10_000;

/** systemd's start limit: at most `burst` starts within `intervalMs`; `allow` says whether one more may go. */
export class StartLimit {
  private readonly times: number[] = [];
  constructor(readonly burst = START_LIMIT_BURST, readonly intervalMs = START_LIMIT_INTERVAL_MS) {}

  allow(now: number): boolean {
    while (this.times.length && now - this.times[0] >= this.intervalMs) this.times.shift();
    if (this.times.length >= this.burst) return false;
    this.times.push(now);
    return true;
  }
}

/** How a child ended, as a person says it. */
export function describeExit(code: number | null, signal: string | null): string {
  return signal ? `killed by ${signal}` : `exited with status ${code}`;
}

/** Reads a supervisor's status file; undefined if there is none or it is not one. */
export function readSupervisorStatus(file: string): SupervisorStatus | undefined {
  try {
    const s = JSON.parse(readFileSync(file, "utf8")) as SupervisorStatus;
    return typeof s === "object" && s !== null && Number.isInteger(s.pid) && Number.isInteger(s.switch) && Number.isInteger(s.restarts) ? s : undefined;
  } catch {
    return undefined;
  }
}

export class Supervisor {
  private readonly children = new Map<number, ChildProcess>();
  private readonly status: SupervisorStatus;
  private readonly switchLimit = new StartLimit();
  private readonly standbyLimit = new StartLimit();
  private standbyTimer?: ReturnType<typeof setTimeout>;
  private finished!: () => void;
  readonly done = new Promise<void>((resolve) => (this.finished = resolve));

  constructor(private readonly opts: SuperviseOptions) {
    this.status = { pid: process.pid, node: opts.node, state: "running", switch: 0, standby: 0, restarts: 0, updatedAt: "" };
  }

  start(): void {
    this.say("info", "supervisor: starting the switch", { command: this.opts.command.join(" ") });
    this.status.switch = this.spawnSwitch();
    this.save();
    this.prepareStandby();
  }

  private spawnSwitch(): number {
    const fd = openSync(this.opts.log, "a");
    const child = spawn(this.opts.command[0], this.opts.command.slice(1), {
      stdio: ["ignore", fd, fd], cwd: this.opts.cwd, env: { ...process.env, TAPNET_STANDBY: "1" },
    });
    closeSync(fd);
    const pid = child.pid ?? 0;
    if (pid) this.children.set(pid, child);
    child.on("exit", (code, signal) => this.onExit(pid, code, signal));
    child.on("error", (e) => this.say("error", "supervisor: cannot start the switch", { error: e.message }));
    return pid;
  }

  /** Once the running switch answers, and a second later, a standby behind it. */
  private prepareStandby(): void {
    clearTimeout(this.standbyTimer);
    const tick = async () => {
      if (this.status.state !== "running" || this.status.standby || !this.status.switch) return;
      if (!(await isAlive(this.opts.control))) {
        this.standbyTimer = setTimeout(tick, 200);
        return;
      }
      this.standbyTimer = setTimeout(() => {
        if (this.status.state !== "running" || this.status.standby) return;
        if (!this.standbyLimit.allow(Date.now())) {
          this.status.message = `the standby died ${START_LIMIT_BURST} times within ${START_LIMIT_INTERVAL_MS / 1000} s: no more standbys (a dead switch is started cold)`;
          this.say("warn", `supervisor: ${this.status.message}`);
        } else {
          this.status.standby = this.spawnSwitch();
        }
        this.save();
      }, STANDBY_DELAY_MS);
    };
    this.standbyTimer = setTimeout(tick, 200);
  }

  private onExit(pid: number, code: number | null, signal: string | null): void {
    this.children.delete(pid);
    const how = describeExit(code, signal);
    if (this.status.state !== "running") {
      if (pid === this.status.standby) this.status.standby = 0;
      if (pid === this.status.switch) this.status.switch = 0;
      this.stopNext();
      return;
    }
    if (pid === this.status.standby) {
      this.status.standby = 0;
      this.say("warn", "supervisor: the standby exited", { pid, how });
      this.prepareStandby();
    } else if (pid === this.status.switch) {
      this.status.restarts++;
      this.status.lastExit = { pid, how, at: new Date().toISOString() };
      if (!this.switchLimit.allow(Date.now())) {
        this.status.state = "failed";
        this.status.switch = 0;
        this.status.message = `the switch died ${START_LIMIT_BURST} times within ${START_LIMIT_INTERVAL_MS / 1000} s (last: ${how}): not started again; see the log above`;
        this.say("error", `supervisor: ${this.status.message}`);
        this.save();
        this.stop(); // the standby too, if there is one
        return;
      }
      const next = this.status.standby || this.spawnSwitch();
      this.say("warn", "supervisor: the switch exited, another takes over", { pid, how, next, standby: this.status.standby === next, restarts: this.status.restarts });
      this.status.switch = next;
      this.status.standby = 0;
      this.prepareStandby();
    }
    this.save();
  }

  /** SIGTERM: see the top of this file. */
  stop(): void {
    if (this.status.state === "stopping" || this.status.state === "stopped") return;
    if (this.status.state === "running") this.status.state = "stopping";
    clearTimeout(this.standbyTimer);
    this.say("info", "supervisor: stopping", { switch: this.status.switch, standby: this.status.standby });
    setTimeout(() => {
      for (const c of this.children.values()) c.kill("SIGKILL");
    }, STOP_TIMEOUT_MS).unref();
    this.stopNext();
  }

  /** The standby first, then the switch; done when none is left. */
  private stopNext(): void {
    this.save();
    const standby = this.status.standby && this.children.get(this.status.standby);
    if (standby) {
      standby.kill("SIGTERM");
      return;
    }
    const sw = this.status.switch && this.children.get(this.status.switch);
    if (sw) {
      sw.kill("SIGTERM");
      return;
    }
    for (const c of this.children.values()) c.kill("SIGTERM");
    if (this.children.size) return;
    if (this.status.state === "stopping") this.status.state = "stopped";
    this.save();
    this.say("info", "supervisor: stopped");
    this.finished();
  }

  private save(): void {
    this.status.updatedAt = new Date().toISOString();
    const tmp = `${this.opts.statusFile}.tmp`;
    try {
      writeFileSync(tmp, JSON.stringify(this.status, null, 1) + "\n");
      renameSync(tmp, this.opts.statusFile);
    } catch {
      // the lab's directory is gone (lab down removed it): nothing to tell anyone
    }
  }

  private say(level: string, msg: string, fields: Record<string, unknown> = {}): void {
    try {
      const fd = openSync(this.opts.log, "a");
      writeSync(fd, JSON.stringify({ time: new Date().toISOString(), level, msg, node: this.opts.node, ...fields }) + "\n");
      closeSync(fd);
    } catch {
      // as above
    }
  }
}
