/**
 * The node agent's health endpoints answer from a worker thread: probes get their answer at once
 * while the main loop is busy (a compile), and a main loop stuck past the stall limit fails them.
 * The probing client runs in a worker of its own, so it is not blocked with the main loop either.
 */
import { Worker } from 'node:worker_threads';
import { startHealthServerOffLoop, type Check } from '../../../agent/node/health.js';

/** Asks `path` every 20 ms from a worker thread until told to stop; returns [status, ms, body] per answer. */
function prober(port: number, path: string): { stop(): Promise<Array<[number, number, string]>> } {
  const w = new Worker(
    `const { parentPort, workerData } = require('node:worker_threads');
     const http = require('node:http');
     const out = []; let stop = false;
     parentPort.on('message', () => { stop = true; });
     const once = () => {
       if (stop) return parentPort.postMessage(out);
       const t0 = performance.now();
       http.get({ host: '127.0.0.1', port: workerData.port, path: workerData.path, agent: false }, (res) => {
         let body = ''; res.on('data', (d) => (body += d));
         res.on('end', () => { out.push([res.statusCode, performance.now() - t0, body]); setTimeout(once, 20); });
       }).on('error', () => setTimeout(once, 20));
     };
     once();`,
    { eval: true, workerData: { port, path } },
  );
  return {
    stop: () =>
      new Promise((resolve) => {
        w.once('message', (m: Array<[number, number, string]>) => {
          void w.terminate();
          resolve(m);
        });
        w.postMessage('stop');
      }),
  };
}

function busy(ms: number): void {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    /* the main loop compiles */
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('health endpoints off the main loop', () => {
  it('answer /readyz from the published checks, and nothing but /healthz and /readyz', async () => {
    let ready: Check = { ok: false, reason: 'enforcing the first full sync in the datapath' };
    const h = await startHealthServerOffLoop({ healthz: () => ({ ok: true }), readyz: () => ready }, 0, '127.0.0.1');
    try {
      const r1 = await fetch(`http://127.0.0.1:${h.port}/readyz`);
      expect([r1.status, await r1.text()]).toEqual([503, 'not ready: enforcing the first full sync in the datapath\n']);
      ready = { ok: true };
      h.refresh();
      await sleep(50);
      expect((await fetch(`http://127.0.0.1:${h.port}/readyz`)).status).toBe(200);
      expect((await fetch(`http://127.0.0.1:${h.port}/healthz`)).status).toBe(200);
      expect((await fetch(`http://127.0.0.1:${h.port}/statusz`)).status).toBe(404);
    } finally {
      await h.close();
    }
  });

  it('answer within a few ms while the main loop is busy for 1.5 s', async () => {
    const h = await startHealthServerOffLoop(
      { healthz: () => ({ ok: true }), readyz: () => ({ ok: true }) },
      0,
      '127.0.0.1',
    );
    try {
      const p = prober(h.port, '/healthz');
      await sleep(200);
      busy(1500);
      await sleep(100);
      const answers = await p.stop();
      expect(answers.length).toBeGreaterThan(20); // answered during the busy stretch too
      expect(answers.every(([code]) => code === 200)).toBe(true);
      expect(Math.max(...answers.map(([, ms]) => ms))).toBeLessThan(500);
    } finally {
      await h.close();
    }
  });

  it('fail once the main loop has not turned for the stall limit', async () => {
    const h = await startHealthServerOffLoop(
      { healthz: () => ({ ok: true }), readyz: () => ({ ok: true }) },
      0,
      '127.0.0.1',
      { stallLimitMs: 300 },
    );
    try {
      const p = prober(h.port, '/healthz');
      await sleep(100);
      busy(1200);
      await sleep(400);
      const answers = await p.stop();
      const stuck = answers.filter(([code]) => code === 503);
      expect(stuck.length).toBeGreaterThan(0);
      expect(stuck[0]![2]).toMatch(/^not ready: the agent has not turned its event loop for \d+ s\n$/);
      expect(answers[answers.length - 1]![0]).toBe(200); // it turns again
    } finally {
      await h.close();
    }
  });
});
