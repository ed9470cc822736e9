/**
 * `weir agent status` (control socket), /metrics and /healthz of the node agent are served from a
 * native thread (agent/offloop.ts): a request made while the main loop compiles a large policy is answered before the
 * compile ends, with the last status or metrics the main loop handed over (and their age); once
 * the main loop is free again, answers are fresh. The client runs in a worker of its own and
 * raises a shared flag when its answer arrives; the main loop keeps compiling until it sees the
 * flag (or gives up after 20 s), so "answered during the compile" is a fact, not a timing.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { startStatusServer } from '../../../agent/node/status.js';
import { startHealthServerOffLoop } from '../../../agent/node/health.js';
import { OffLoopHost } from '../../../agent/offloop.js';
import { readAgentStatus } from '../../../agent/node/status.js';
import { startMetricsServerOffLoop } from '../../../agent/metrics/server.js';
import { WeirMetrics } from '../../../agent/metrics/metrics.js';
import { PolicyEngine } from '../../../agent/policy/engine.js';
import { toKubeObject, type KubeObject } from '../../../agent/store/index.js';

interface Got {
  status: number;
  age: string | null;
  body: string;
}

/** A client thread that sends `times` GETs one after another when told and raises flag[0] when the last answer is in. */
function client(target: { socketPath: string } | { port: number }, path: string, times = 1) {
  const flag = new Int32Array(new SharedArrayBuffer(4));
  const w = new Worker(
    `const { parentPort, workerData } = require('node:worker_threads');
     const http = require('node:http');
     const flag = new Int32Array(workerData.flag);
     parentPort.on('message', () => {
       const o = { path: workerData.path, agent: false, ...(workerData.target.socketPath
         ? { socketPath: workerData.target.socketPath } : { host: '127.0.0.1', port: workerData.target.port }) };
       let left = workerData.times;
       const once = () => http.get(o, (res) => {
         let body = ''; res.on('data', (d) => (body += d));
         res.on('end', () => {
           if (--left > 0) return once();
           parentPort.postMessage({ status: res.statusCode, age: res.headers['x-weir-answer-age-ms'] ?? null, body });
           Atomics.store(flag, 0, 1);
         });
       }).on('error', (e) => { parentPort.postMessage({ status: 0, age: null, body: String(e) }); Atomics.store(flag, 0, 1); });
       once();
     });`,
    { eval: true, workerData: { flag: flag.buffer, target, path, times } },
  );
  return {
    /** Sends the request; resolves with the answer. */
    ask(): Promise<Got> {
      const got = new Promise<Got>((r) => w.once('message', r));
      w.postMessage('go');
      return got;
    },
    answered: () => Atomics.load(flag, 0) === 1,
    close: () => w.terminate(),
  };
}

const policy = (i: number): KubeObject =>
  toKubeObject({
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: { name: `blocks-${i}`, namespace: 'x' },
    spec: {
      podSelector: {},
      policyTypes: ['Egress'],
      egress: [
        {
          to: Array.from({ length: 2000 }, (_, k) => ({ ipBlock: { cidr: `${20 + i}.${k >> 8}.${k & 255}.0/24` } })),
        },
      ],
    },
  })!;

/**
 * Compiles policies on the main loop, never yielding, until `done()` or 20 s; returns how many
 * policies it compiled and whether `done()` became true while it was still compiling.
 */
function compileUntil(done: () => boolean): { policies: number; doneDuringCompile: boolean } {
  const engine = new PolicyEngine({ nodeName: 'n1', cidrBudget: { perNamespace: 60_000 } });
  engine.upsertAll([toKubeObject({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'x' } })!]);
  const end = Date.now() + 20_000;
  let n = 0;
  while (Date.now() < end) {
    engine.upsertAll([policy(n++ % 20)]);
    if (done()) return { policies: n, doneDuringCompile: true };
  }
  return { policies: n, doneDuringCompile: false };
}

describe('status and metrics off the main loop', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'weir-offloop-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('answers `weir agent status` during a compile with the last status, and fresh once the loop is free', async () => {
    let revision = 1;
    let computed = 0;
    // As in the node agent: health and status share one thread.
    const host = new OffLoopHost();
    const health = await startHealthServerOffLoop(
      { healthz: () => ({ ok: true }), readyz: () => ({ ok: true }) },
      0,
      '127.0.0.1',
      { offLoop: host },
    );
    const srv = await startStatusServer(dir, () => (computed++, { revision }), { deadlineMs: 50, host });
    // Three requests in a row during the compile: the main loop is asked once.
    const c = client({ socketPath: srv.socketPath }, '/status', 3);
    const h = client({ port: health.port }, '/healthz');
    try {
      await srv.refresh(); // what the agent hands over at start and once ready
      expect(computed).toBe(1);
      revision = 2; // the main loop moves on, then starts a long compile
      const got = c.ask();
      const gotHealth = h.ask();
      const run = compileUntil(() => c.answered() && h.answered());
      revision = 3;
      expect(run.doneDuringCompile).toBe(true);
      expect(await gotHealth).toMatchObject({ status: 200, body: 'ok\n' });
      const a = await got;
      expect(a.status).toBe(200);
      expect(JSON.parse(a.body)).toEqual({ result: { revision: 1 } });
      expect(Number(a.age)).toBeGreaterThanOrEqual(0);
      // The main loop is free: the one question asked during the compile is answered now (three
      // requests, one computation), and answers are fresh again.
      await new Promise((r) => setTimeout(r, 100));
      expect(computed).toBe(2);
      expect(await readAgentStatus(dir)).toEqual({ revision: 3 });
    } finally {
      await c.close();
      await h.close();
      await srv.close();
      await health.close();
      await host.close();
    }
  });

  it('answers /metrics during a compile with the last rendering', async () => {
    const m = new WeirMetrics({});
    const srv = await startMetricsServerOffLoop(m, 0, '127.0.0.1', { deadlineMs: 50 });
    const c = client({ port: srv.port }, '/metrics');
    try {
      m.kubernetesEvent('pods', 'add');
      await srv.refresh();
      m.kubernetesEvent('pods', 'add');
      const got = c.ask();
      const run = compileUntil(c.answered);
      expect(run.doneDuringCompile).toBe(true);
      const a = await got;
      expect(a.status).toBe(200);
      expect(a.age).not.toBeNull();
      expect(a.body).toMatch(/weir_kubernetes_events_total\{[^}]*resource="pods"[^}]*\} 1\n/);
      const fresh = await fetch(srv.url);
      expect(fresh.headers.get('x-weir-answer-age-ms')).toBeNull();
      expect(await fresh.text()).toMatch(/weir_kubernetes_events_total\{[^}]*resource="pods"[^}]*\} 2\n/);
    } finally {
      await c.close();
      await srv.close();
      m.close();
    }
  });
});
