/**
 * The long-lived process of one lab pod, started inside the pod's network namespace. It serves
 * every declared port (TCP: accept and answer with the pod's name; UDP: echo the pod's name;
 * SCTP: raw IP packets through sctp-raw.py, since this kernel has no SCTP sockets) and runs
 * probes on request from its unix socket, concurrently, each with a short timeout.
 *
 *   node pod-agent.js --pod NS/NAME --socket PATH --ports 80/TCP,81/UDP,80/SCTP
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createServer, connect, isIPv6, type Server } from 'node:net';
import { rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import type { L4Protocol } from '../desired.js';
import {
  GREETING_SUFFIX,
  type PodAgentRequest,
  type PodAgentResponse,
  type ProbeOutcome,
  type ProbeTarget,
  type ServedPort,
} from './probe-protocol.js';

const SCTP_HELPER = fileURLToPath(new URL('../../../agent/lab/sctp-raw.py', import.meta.url));

export function parsePorts(spec: string): ServedPort[] {
  if (spec.trim() === '') return [];
  return spec.split(',').map((item) => {
    const [p, proto] = item.split('/');
    const port = Number(p);
    const protocol = (proto ?? 'TCP').toUpperCase();
    if (!Number.isInteger(port) || port < 1 || port > 65535 || !['TCP', 'UDP', 'SCTP'].includes(protocol)) {
      throw new Error(`bad port ${JSON.stringify(item)}: write PORT/TCP, PORT/UDP or PORT/SCTP`);
    }
    return { port, protocol: protocol as L4Protocol };
  });
}

export function formatPorts(ports: ServedPort[]): string {
  return ports.map((p) => `${p.port}/${p.protocol}`).join(',');
}

class SctpHelper {
  private child: ChildProcessWithoutNullStreams;
  private nextId = 1;
  private waiting = new Map<number, (o: { connected: boolean; detail: string }) => void>();
  /** Resolves once the helper's raw sockets are open (it prints {"ready": true}). */
  readonly ready: Promise<void>;

  constructor(ports: number[]) {
    this.child = spawn('python3', [SCTP_HELPER, ...ports.map(String)], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.child.stderr.on('data', (d: Buffer) => process.stderr.write(`sctp-raw: ${d.toString()}`));
    let markReady: () => void = () => undefined;
    let markFailed: (e: Error) => void = () => undefined;
    this.ready = new Promise((res, rej) => {
      markReady = res;
      markFailed = rej;
    });
    this.child.on('exit', (code) => {
      markFailed(new Error(`the SCTP raw-packet helper exited (${code}); it needs python3 and root`));
      for (const done of this.waiting.values()) done({ connected: false, detail: `sctp helper exited (${code})` });
      this.waiting.clear();
    });
    createInterface({ input: this.child.stdout }).on('line', (line) => {
      const msg = JSON.parse(line) as { id: number; connected: boolean; detail: string; ready?: boolean };
      if (msg.ready) {
        markReady();
        return;
      }
      const done = this.waiting.get(msg.id);
      this.waiting.delete(msg.id);
      done?.(msg);
    });
  }

  probe(ip: string, port: number, timeoutMs: number): Promise<{ connected: boolean; detail: string }> {
    const id = this.nextId++;
    return new Promise((resolve) => {
      this.waiting.set(id, resolve);
      this.child.stdin.write(`${JSON.stringify({ id, ip, port, timeout: timeoutMs / 1000 })}\n`);
    });
  }

  close(): void {
    this.child.kill();
  }
}

type Outcome = { connected: boolean; detail: string; answeredBy?: string };

/** The pod name a responder's greeting carries. */
function greeter(data: Buffer): string | undefined {
  const text = data.toString('utf8');
  const end = text.indexOf(GREETING_SUFFIX);
  const name = end >= 0 ? text.slice(0, end) : text;
  return /^[a-z0-9.-]+\/[a-z0-9.-]+$/.test(name) ? name : undefined;
}

function probeTcp(t: ProbeTarget, timeoutMs: number): Promise<Outcome> {
  return new Promise((resolve) => {
    const sock = connect({ host: t.ip, port: t.port });
    const timer = setTimeout(() => finish(false, 'timeout'), timeoutMs);
    let done = false;
    function finish(connected: boolean, detail: string, answeredBy?: string): void {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      resolve({ connected, detail, ...(answeredBy ? { answeredBy } : {}) });
    }
    sock.on('data', (d: Buffer) => finish(true, 'answered', greeter(d)));
    sock.on('error', (err: NodeJS.ErrnoException) =>
      finish(false, err.code === 'ECONNREFUSED' ? 'refused' : (err.code ?? err.message)),
    );
    sock.on('end', () => finish(false, 'closed without answer'));
  });
}

function probeUdp(t: ProbeTarget, timeoutMs: number): Promise<Outcome> {
  return new Promise((resolve) => {
    const sock = createSocket(isIPv6(t.ip) ? 'udp6' : 'udp4');
    let done = false;
    const timer = setTimeout(() => finish(false, 'timeout'), timeoutMs);
    function finish(connected: boolean, detail: string, answeredBy?: string): void {
      if (done) return;
      done = true;
      clearTimeout(timer);
      try {
        sock.close();
      } catch {
        /* already closed */
      }
      resolve({ connected, detail, ...(answeredBy ? { answeredBy } : {}) });
    }
    sock.on('message', (m: Buffer) => finish(true, 'answered', greeter(m)));
    sock.on('error', (err: NodeJS.ErrnoException) =>
      finish(false, err.code === 'ECONNREFUSED' ? 'refused' : (err.code ?? err.message)),
    );
    // On a busy machine the connect callback can come after the timeout closed the socket.
    sock.connect(t.port, t.ip, () => {
      if (done) return;
      try {
        sock.send('probe');
      } catch (err) {
        finish(false, (err as NodeJS.ErrnoException).code ?? String(err));
      }
    });
  });
}

export class PodAgent {
  private servers: (Server | UdpSocket)[] = [];
  private control?: Server;
  private sctp?: SctpHelper;

  constructor(
    readonly pod: string,
    readonly socketPath: string,
    readonly ports: ServedPort[],
  ) {}

  async start(): Promise<void> {
    const greeting = `${this.pod}${GREETING_SUFFIX}`;
    for (const p of this.ports) {
      if (p.protocol === 'TCP') {
        const srv = createServer((c) => {
          c.on('error', () => undefined);
          c.end(greeting);
        });
        await new Promise<void>((res, rej) => {
          srv.once('error', rej);
          srv.listen({ port: p.port, host: '::', ipv6Only: false }, () => res());
        });
        this.servers.push(srv);
      } else if (p.protocol === 'UDP') {
        const sock = createSocket({ type: 'udp6', ipv6Only: false });
        sock.on('message', (_msg, from) => sock.send(greeting, from.port, from.address));
        await new Promise<void>((res, rej) => {
          sock.once('error', rej);
          sock.bind(p.port, '::', () => res());
        });
        this.servers.push(sock);
      }
    }
    this.sctp = new SctpHelper(this.ports.filter((p) => p.protocol === 'SCTP').map((p) => p.port));
    await this.sctp.ready;
    rmSync(this.socketPath, { force: true });
    this.control = createServer((conn) => {
      conn.on('error', () => undefined);
      const lines = createInterface({ input: conn });
      lines.on('error', () => undefined);
      lines.on('line', (line) => {
        void this.handle(line).then((resp) => {
          if (!conn.destroyed) conn.write(`${JSON.stringify(resp)}\n`);
        });
      });
    });
    await new Promise<void>((res, rej) => {
      this.control?.once('error', rej);
      this.control?.listen(this.socketPath, () => res());
    });
  }

  async probe(t: ProbeTarget, timeoutMs: number): Promise<ProbeOutcome> {
    const start = performance.now();
    let r: Outcome;
    if (t.protocol === 'TCP') r = await probeTcp(t, timeoutMs);
    else if (t.protocol === 'UDP') r = await probeUdp(t, timeoutMs);
    else r = await (this.sctp as SctpHelper).probe(t.ip, t.port, timeoutMs);
    return { ...r, ms: Math.round((performance.now() - start) * 100) / 100 };
  }

  private async handle(line: string): Promise<PodAgentResponse> {
    let req: PodAgentRequest;
    try {
      req = JSON.parse(line) as PodAgentRequest;
    } catch {
      return { id: -1, error: 'request is not JSON' };
    }
    if (req.op === 'ping') return { id: req.id, ok: true, pod: this.pod, pid: process.pid };
    if (req.op === 'probe') {
      const results = await Promise.all(req.targets.map((t) => this.probe(t, req.timeoutMs)));
      return { id: req.id, results };
    }
    return { id: (req as { id: number }).id, error: `unknown op ${(req as { op: string }).op}` };
  }

  close(): void {
    for (const s of this.servers) s.close();
    this.control?.close();
    this.sctp?.close();
    rmSync(this.socketPath, { force: true });
  }
}

function arg(name: string): string {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? process.argv[i + 1] : undefined;
  if (v === undefined) throw new Error(`pod agent needs --${name}`);
  return v;
}

const isMain = process.argv[1] !== undefined && process.argv[1].endsWith('pod-agent.js');
if (isMain) {
  // One failed probe must not take the pod's servers down: log it and keep serving.
  process.on('uncaughtException', (err) => {
    process.stderr.write(`pod agent: ${err.stack ?? err.message}\n`);
  });
  const agent = new PodAgent(arg('pod'), arg('socket'), parsePorts(arg('ports')));
  agent.start().then(
    () => process.stdout.write(`pod agent ${agent.pod} ready on ${agent.socketPath}\n`),
    (err: unknown) => {
      process.stderr.write(`pod agent ${agent.pod}: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(1);
    },
  );
  for (const sig of ['SIGTERM', 'SIGINT'] as const) {
    process.on(sig, () => {
      agent.close();
      process.exit(0);
    });
  }
}
