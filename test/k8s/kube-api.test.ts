/**
 * `KubeApi.watch` finds event lines in the response's chunks itself (no readline): events cut
 * at every kind of chunk boundary (inside a key, inside a multi-byte character, at the newline,
 * several events in one chunk, CRLF line ends, a last line without a newline) must arrive whole,
 * in order, and with the unread members cut when asked, exactly as parsing each line alone gives.
 * A plain HTTP server on loopback writes the chunks, with a pause between them so they arrive
 * apart.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { KubeApi, type KubeApiConfig, type WatchEvent } from '../../agent/sources/kube-api.js';
import { withoutUnread } from '../../agent/sources/kube-wire.js';
import { kubeletPod } from '../bench/kube-objects.js';
import { mulberry32 } from '../prng.js';

const config = (server: string): KubeApiConfig => ({
  getCurrentCluster: () => ({ server }),
  applyToHTTPSOptions: () => Promise.resolve(),
});

/** Serves one watch response: `body` cut at `cuts`, each piece written after a pause. */
async function serve(body: Buffer, cuts: number[]): Promise<{ url: string; close: () => Promise<void> }> {
  const server = http.createServer((_req, res) => {
    res.writeHead(200, { 'Content-Type': 'application/json' });
    void (async () => {
      let from = 0;
      for (const at of [...cuts, body.length]) {
        res.write(body.subarray(from, at));
        from = at;
        await new Promise((r) => setTimeout(r, 2));
      }
      res.end();
    })();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () => new Promise((r) => server.close(() => r())),
  };
}

async function watchAll(body: Buffer, cuts: number[], prepare?: (b: Buffer) => Buffer): Promise<WatchEvent[]> {
  const s = await serve(body, cuts);
  const api = new KubeApi(config(s.url));
  const got: WatchEvent[] = [];
  try {
    await api.watch('/api/v1/pods', {}, (e) => got.push(e), new AbortController().signal, prepare);
  } finally {
    api.destroy();
    await s.close();
  }
  return got;
}

function events(): WatchEvent[] {
  return Array.from({ length: 6 }, (_, i) => {
    const pod = kubeletPod('ns-1', i, 'node-1', '172.16.0.2', `10.64.1.${i + 1}`, 'app-1');
    // multi-byte characters, so a chunk boundary can fall inside one
    (pod.metadata.labels as Record<string, string>).team = i % 2 ? 'équipe-雪' : 'plain';
    return { type: i === 0 ? 'ADDED' : 'MODIFIED', object: pod } as WatchEvent;
  });
}

describe('KubeApi.watch', () => {
  const sent = events();
  const lines = sent.map((e) => JSON.stringify(e));

  it('delivers every event whole and in order, whatever the chunk boundaries', async () => {
    const r = mulberry32(7);
    const body = Buffer.from(lines.map((l, i) => (i % 3 === 1 ? `${l}\r\n` : `${l}\n`)).join('') + '\n');
    for (let round = 0; round < 4; round++) {
      // boundaries: random, plus right before and after each newline and inside the first character
      const cuts = new Set<number>();
      for (let i = 0; i < 12; i++) cuts.add(1 + Math.floor(r() * (body.length - 1)));
      let nl = body.indexOf(0x0a);
      while (nl >= 0 && cuts.size < 40) {
        cuts.add(nl);
        cuts.add(nl + 1);
        nl = body.indexOf(0x0a, nl + 1);
      }
      const multi = body.indexOf(Buffer.from('雪'));
      cuts.add(multi + 1);
      const got = await watchAll(
        body,
        [...cuts].filter((c) => c > 0 && c < body.length).sort((a, b) => a - b),
      );
      expect(got).toEqual(sent);
    }
  });

  it('cuts the unread members of each event when asked, as cutting each line alone does', async () => {
    const body = Buffer.from(lines.join('\n')); // the last line without a newline
    const got = await watchAll(body, [100, 5000, 5001, body.length - 3], withoutUnread);
    const expected = lines.map((l) => JSON.parse(withoutUnread(Buffer.from(l)).toString('utf8')) as WatchEvent);
    expect(got).toEqual(expected);
    expect(got[0]!.object.metadata?.managedFields).toBeUndefined();
    expect((got[1]!.object.metadata?.labels as Record<string, string>).team).toBe('équipe-雪');
    expect((got[1]!.object.status as { podIPs: unknown }).podIPs).toEqual([{ ip: '10.64.1.2' }]);
  });
});
