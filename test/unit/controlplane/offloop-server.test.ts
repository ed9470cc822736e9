/**
 * The off-loop HTTP server (agent/offloop.ts on the addon's native thread) as its clients see it:
 * kubelet probes and `weir agent status` answered while the main loop is blocked (a real busy
 * loop in this process), the control socket's unix socket, and the HTTP a Prometheus scrape or a
 * probe speaks (keep-alive, `Connection: close`, HTTP/1.0, GET only), the "in use" error and
 * close() freeing the port. Requests go over real sockets, from a worker thread when the main
 * loop is blocked.
 */
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { startHealthServerOffLoop } from '../../../agent/node/health.js';
import { readAgentStatus, startStatusServer } from '../../../agent/node/status.js';
import { OffLoopHost, serveOffLoop, type OffLoopRoute, type ServeOptions } from '../../../agent/offloop.js';
import { mulberry32 } from '../../prng.js';

interface Polled {
  path: string;
  status: number;
  age: string | null;
  body: string;
  sentAt: number;
  doneAt: number;
}

/**
 * A client thread that, once started, asks each target (each on its own, one request at a time)
 * `everyMs` after its last answer for `forMs`, and
 * returns every answer with when it was sent and when it came (Date.now(), the same clock as the
 * main thread's).
 */
function poller(targets: { path: string; socketPath?: string; port?: number }[], everyMs: number, forMs: number) {
  const w = new Worker(
    `const { parentPort, workerData } = require('node:worker_threads');
     const http = require('node:http');
     const get = (t) => new Promise((resolve) => {
       const sentAt = Date.now();
       const o = { path: t.path, agent: false, ...(t.socketPath ? { socketPath: t.socketPath } : { host: '127.0.0.1', port: t.port }) };
       http.get(o, (res) => {
         let body = ''; res.on('data', (d) => (body += d));
         res.on('end', () => resolve({ path: t.path, status: res.statusCode, age: res.headers['x-weir-answer-age-ms'] ?? null, body, sentAt, doneAt: Date.now() }));
       }).on('error', (e) => resolve({ path: t.path, status: 0, age: null, body: String(e), sentAt, doneAt: Date.now() }));
     });
     parentPort.once('message', async () => {
       parentPort.postMessage('started');
       const out = [];
       const end = Date.now() + workerData.forMs;
       await Promise.all(workerData.targets.map(async (t) => {
         while (Date.now() < end) {
           out.push(await get(t));
           await new Promise((r) => setTimeout(r, workerData.everyMs));
         }
       }));
       parentPort.postMessage(out);
     });`,
    { eval: true, workerData: { targets, everyMs, forMs } },
  );
  return {
    /** Starts polling; `started` resolves once the thread runs, `done` with every answer. */
    start() {
      const started = new Promise<void>((r) => w.once('message', () => r()));
      w.postMessage('go');
      const done = started.then(() => new Promise<Polled[]>((r) => w.once('message', r)));
      return { started, done };
    },
    close: () => w.terminate(),
  };
}

/** Sends raw bytes on a TCP connection and collects everything until the server closes it or `quietMs` passes. */
function raw(port: number, data: string, quietMs = 400): Promise<{ text: string; closedByServer: boolean }> {
  return new Promise((resolve, reject) => {
    const s: Socket = connect(port, '127.0.0.1');
    let text = '';
    let timer: NodeJS.Timeout;
    const quiet = () => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        s.destroy();
        resolve({ text, closedByServer: false });
      }, quietMs);
    };
    s.on('connect', () => {
      s.write(data);
      quiet();
    });
    s.on('data', (d) => {
      text += d.toString();
      quiet();
    });
    s.on('end', () => {
      clearTimeout(timer);
      s.destroy();
      resolve({ text, closedByServer: true });
    });
    s.on('error', reject);
  });
}

const statuses = (text: string) => [...text.matchAll(/^HTTP\/1\.1 (\d{3}) /gm)].map((m) => Number(m[1]));

const text = (body: string) => ({ contentType: 'text/plain; charset=utf-8', body });
const opts = (extra: Partial<ServeOptions> = {}): ServeOptions => ({
  notFound: text('not found\n'),
  inUse: 'port in use: pass --test-port with a free port',
  ...extra,
});

describe('the off-loop server', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'weir-offloop-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('answers kubelet probes and `weir agent status` while the main loop is blocked for 2 s', async () => {
    let revision = 1;
    const host = new OffLoopHost();
    const health = await startHealthServerOffLoop(
      { healthz: () => ({ ok: true }), readyz: () => ({ ok: true }) },
      0,
      '127.0.0.1',
      { offLoop: host },
    );
    const status = await startStatusServer(dir, () => ({ revision }), { host });
    const p = poller(
      [
        { path: '/healthz', port: health.port },
        { path: '/readyz', port: health.port },
        { path: '/status', socketPath: status.socketPath },
      ],
      50,
      2600,
    );
    try {
      await status.refresh();
      await new Promise((r) => setTimeout(r, 300)); // health publishes its checks every 200 ms
      const run = p.start();
      await run.started;
      // The main loop is blocked: a busy loop that never yields for 2 s.
      const blockedFrom = Date.now();
      revision = 2;
      while (Date.now() - blockedFrom < 2000) {
        /* busy */
      }
      const blockedTo = Date.now();
      revision = 3;
      const got = await run.done;
      // (strictly before its end: an answer may come within the millisecond the block ends)
      const during = got.filter((g) => g.sentAt >= blockedFrom && g.doneAt < blockedTo);
      for (const path of ['/healthz', '/readyz', '/status']) {
        const answers = during.filter((g) => g.path === path);
        // polled 50 ms after each answer: probes are answered at once (tens in the 2 s), status
        // after its 250 ms deadline (about seven)
        expect(answers.length).toBeGreaterThanOrEqual(path === '/status' ? 5 : 10);
        for (const a of answers) {
          expect(a.status).toBe(200);
          expect(a.doneAt - a.sentAt).toBeLessThan(1000);
        }
      }
      for (const a of during.filter((g) => g.path === '/healthz')) expect(a.body).toBe('ok\n');
      // status during the block: the last answer the main loop gave, with its age
      for (const a of during.filter((g) => g.path === '/status')) {
        expect(JSON.parse(a.body)).toEqual({ result: { revision: 1 } });
        expect(Number(a.age)).toBeGreaterThanOrEqual(250);
      }
      // once the loop is free, status is fresh again
      await new Promise((r) => setTimeout(r, 50));
      expect(await readAgentStatus(dir)).toEqual({ revision: 3 });
    } finally {
      await p.close();
      await status.close();
      await health.close();
      await host.close();
    }
  });

  it('says so on /healthz once the main loop has published nothing for the stall limit, and recovers', async () => {
    const health = await startHealthServerOffLoop(
      { healthz: () => ({ ok: true }), readyz: () => ({ ok: false, reason: 'syncing' }) },
      0,
      '127.0.0.1',
      { stallLimitMs: 500 },
    );
    const p = poller([{ path: '/healthz', port: health.port }], 50, 1500);
    try {
      await new Promise((r) => setTimeout(r, 300));
      const ready = await fetch(`http://127.0.0.1:${health.port}/readyz`);
      expect(ready.status).toBe(503);
      expect(await ready.text()).toBe('not ready: syncing\n');
      const run = p.start();
      await run.started;
      const from = Date.now();
      while (Date.now() - from < 1200) {
        /* busy */
      }
      const got = await run.done;
      const late = got.filter((g) => g.sentAt >= from + 800 && g.doneAt <= from + 1200);
      expect(late.length).toBeGreaterThan(0);
      for (const a of late) {
        expect(a.status).toBe(503);
        expect(a.body).toMatch(/^not ready: the agent has not turned its event loop for 1 s\n$/);
      }
      await new Promise((r) => setTimeout(r, 300));
      const after = await fetch(`http://127.0.0.1:${health.port}/healthz`);
      expect(after.status).toBe(200);
    } finally {
      await p.close();
      await health.close();
    }
  });

  it('serves the control socket on a unix socket only its owner may open, and removes it on close', async () => {
    const runDir = join(dir, 'not', 'made', 'yet');
    const stale = join(runDir, 'agent.sock');
    let srv = await startStatusServer(runDir, () => ({ revision: 7 }));
    expect(srv.socketPath).toBe(stale);
    expect(statSync(srv.socketPath).isSocket()).toBe(true);
    expect(statSync(srv.socketPath).mode & 0o777).toBe(0o600);
    expect(await readAgentStatus(runDir)).toEqual({ revision: 7 });
    await srv.close();
    expect(existsSync(srv.socketPath)).toBe(false);
    await expect(readAgentStatus(runDir, 500)).rejects.toThrow();
    // An agent that was killed leaves its socket file behind: the next one replaces it.
    writeFileSync(stale, 'left over');
    srv = await startStatusServer(runDir, () => ({ revision: 8 }));
    try {
      expect(await readAgentStatus(runDir)).toEqual({ revision: 8 });
    } finally {
      await srv.close();
    }
  });

  it('speaks the HTTP/1.1 a probe or a Prometheus scrape speaks, GET only', async () => {
    let n = 0;
    const routes: OffLoopRoute[] = [
      { path: '/published', kind: 'published', answer: () => text('pub\n') },
      { path: '/asked', kind: 'ask', answer: () => text(`asked ${++n}\n`) },
    ];
    const srv = await serveOffLoop(undefined, { port: 0, host: '127.0.0.1' }, routes, opts());
    try {
      // before the main loop published anything: the published route is starting
      expect((await raw(srv.port!, 'GET /published HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')).text).toMatch(
        /^HTTP\/1\.1 503 [^\r]*\r\n[\s\S]*\r\n\r\nstarting\n$/,
      );
      await srv.refresh();
      // keep-alive: two requests sent together (pipelined) on one connection, both answered, in order
      const two = await raw(
        srv.port!,
        'GET /published HTTP/1.1\r\nHost: x\r\n\r\nGET /asked?x=1 HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n',
      );
      expect(statuses(two.text)).toEqual([200, 200]);
      expect(two.closedByServer).toBe(false);
      expect(two.text).toMatch(/Connection: keep-alive/);
      expect(two.text).toMatch(/Content-Type: text\/plain; charset=utf-8\r\n/);
      expect(two.text).toMatch(/Content-Length: 4\r\n[\s\S]*\r\n\r\npub\n/);
      expect(two.text).toMatch(/\r\n\r\nasked 2\n$/);
      // `Connection: close` and HTTP/1.0: the server answers, then ends the connection
      const closing = await raw(srv.port!, 'GET /asked HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
      expect(statuses(closing.text)).toEqual([200]);
      expect(closing.closedByServer).toBe(true);
      const old = await raw(srv.port!, 'GET /published HTTP/1.0\r\n\r\n');
      expect(statuses(old.text)).toEqual([200]);
      expect(old.closedByServer).toBe(true);
      // a body is never read: the request is answered, then the connection ends (no empty length is a body)
      const withBody = await raw(srv.port!, 'GET /published HTTP/1.1\r\nContent-Length: 10\r\n\r\n0123456789');
      expect(statuses(withBody.text)).toEqual([200]);
      expect(withBody.closedByServer).toBe(true);
      const noBody = await raw(
        srv.port!,
        'GET /published HTTP/1.1\r\nContent-Length: 0\r\n\r\nGET /published HTTP/1.1\r\n\r\n',
      );
      expect(statuses(noBody.text)).toEqual([200, 200]);
      expect(noBody.closedByServer).toBe(false);
      // GET only; other paths and methods get the 404 with the server's words
      for (const req of ['POST /asked HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi', 'HEAD /published HTTP/1.1\r\n\r\n']) {
        const r = await raw(srv.port!, req);
        expect(statuses(r.text)).toEqual([404]);
        expect(r.text).toMatch(/\r\n\r\nnot found\n$/);
      }
      const missing = await fetch(`http://127.0.0.1:${srv.port}/nope`);
      expect(missing.status).toBe(404);
      expect(await missing.text()).toBe('not found\n');
      // a request that is not HTTP, or whose headers never end within 8 KiB, ends the connection
      const garbage = await raw(srv.port!, 'hello there\r\n\r\n');
      expect(statuses(garbage.text)).toEqual([400]);
      expect(garbage.closedByServer).toBe(true);
      const huge = await raw(srv.port!, `GET /asked HTTP/1.1\r\nX-Big: ${'a'.repeat(9000)}\r\n\r\n`);
      expect(statuses(huge.text)).toEqual([431]);
      expect(huge.closedByServer).toBe(true);
      // fetch (undici) and its keep-alive pool
      for (let i = 0; i < 3; i++)
        expect(await (await fetch(`http://127.0.0.1:${srv.port}/published`)).text()).toBe('pub\n');
    } finally {
      await srv.close();
    }
  });

  it('survives crafted requests: each gets an HTTP answer or the connection ends, and the server still serves', async () => {
    const routes: OffLoopRoute[] = [
      { path: '/published', kind: 'published', answer: () => text('pub\n') },
      { path: '/asked', kind: 'ask', answer: () => text('asked\n') },
    ];
    const srv = await serveOffLoop(undefined, { port: 0, host: '127.0.0.1' }, routes, opts());
    const rnd = mulberry32(15);
    const pick = <T>(xs: T[]): T => xs[Math.floor(rnd() * xs.length)]!;
    const valid = 'GET /asked HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n';
    const crafted = (): string => {
      switch (Math.floor(rnd() * 5)) {
        case 0: // random bytes, NULs and line ends among them
          return Array.from({ length: 1 + Math.floor(rnd() * 300) }, () =>
            String.fromCharCode(pick([0, 10, 13, 32, 58, 47, 255, Math.floor(rnd() * 256)])),
          ).join('');
        case 1: {
          // a valid request with bytes flipped
          const b = [...valid];
          for (let k = 0; k < 1 + rnd() * 6; k++)
            b[Math.floor(rnd() * b.length)] = String.fromCharCode(Math.floor(rnd() * 256));
          return b.join('');
        }
        case 2: // cut short, or many of them
          return rnd() < 0.5
            ? valid.slice(0, Math.floor(rnd() * valid.length))
            : valid.repeat(2 + Math.floor(rnd() * 20));
        case 3: // huge or odd headers
          return `GET /published HTTP/1.1\r\n${'X: y\r\n'.repeat(Math.floor(rnd() * 3000))}Connection: ${pick(['close', '', 'keep-alive,close', 'CLOSE'])}\r\nContent-Length: ${pick(['0', '5', '-1', '99999999999999999999'])}\r\n\r\n`;
        default: // odd request lines
          return `${pick(['GET', 'get', 'POST', '', 'GET GET'])} ${pick(['/asked', 'http://h/asked?x', '*', '', '/asked#f', '/' + 'a'.repeat(9000)])} ${pick(['HTTP/1.1', 'HTTP/1.0', 'HTTP/2', 'HTTP/1.1 x', ''])}\r\n\r\n`;
      }
    };
    try {
      await srv.refresh();
      for (let batch = 0; batch < 6; batch++) {
        const got = await Promise.all(Array.from({ length: 50 }, () => raw(srv.port!, crafted(), 150)));
        for (const g of got) {
          // whatever was sent, the server answers only whole HTTP/1.1 responses with the statuses it knows
          for (const head of g.text.matchAll(/^HTTP\/1\.1 (\d{3}) /gm))
            expect([200, 400, 404, 431, 503]).toContain(Number(head[1]));
          if (g.text !== '') expect(g.text.startsWith('HTTP/1.1 ')).toBe(true);
        }
      }
      const after = await raw(srv.port!, valid);
      expect(statuses(after.text)).toEqual([200]);
      expect(after.text).toMatch(/\r\n\r\nasked\n$/);
    } finally {
      await srv.close();
    }
  });

  it('says a port in use in the words given, and close() frees the port', async () => {
    const holder = createServer();
    await new Promise<void>((r) => holder.listen(0, '127.0.0.1', r));
    const taken = (holder.address() as { port: number }).port;
    const routes: OffLoopRoute[] = [{ path: '/p', kind: 'published', answer: () => text('p\n') }];
    await expect(serveOffLoop(undefined, { port: taken, host: '127.0.0.1' }, routes, opts())).rejects.toThrow(
      'port in use: pass --test-port with a free port',
    );
    await new Promise((r) => holder.close(r));
    const host = new OffLoopHost();
    try {
      const a = await host.serve({ port: taken, host: '127.0.0.1' }, routes, opts());
      await a.refresh();
      expect(await (await fetch(`http://127.0.0.1:${taken}/p`)).text()).toBe('p\n');
      await a.close();
      await expect(fetch(`http://127.0.0.1:${taken}/p`)).rejects.toThrow();
      // the port is free again: the same host (or anything else) can listen on it
      const b = await host.serve({ port: taken, host: '127.0.0.1' }, routes, opts());
      await b.refresh();
      expect((await fetch(`http://127.0.0.1:${taken}/p`)).status).toBe(200);
      await b.close();
    } finally {
      await host.close();
    }
  });
});
