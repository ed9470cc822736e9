import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findObserverAddress, observerCandidates, AGENT_OBSERVER_SOCKET } from '../../agent/flows/socket.js';
import { ObserverClient } from '../../agent/flows/client.js';
import { Observer } from '../../agent/flows/observer.js';
import { startObserverServer } from '../../agent/flows/server.js';
import { denied, makeContext } from './fixtures.js';

describe('finding the flow API', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'wob-sock-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('takes --server as given, then the lab run dir socket, then the agent socket', () => {
    expect(findObserverAddress('127.0.0.1:4245', {})).toBe('127.0.0.1:4245');
    const runDir = join(dir, 'run');
    mkdirSync(runDir);
    writeFileSync(join(runDir, 'observer.sock'), '');
    expect(findObserverAddress(undefined, { WEIR_LAB_RUN_DIR: runDir })).toBe(join(runDir, 'observer.sock'));
    expect(observerCandidates({})).toEqual(['/run/weir/lab/observer.sock', AGENT_OBSERVER_SOCKET]);
    expect(findObserverAddress(undefined, { WEIR_OBSERVER_ADDRESS: 'node1:4245' })).toBe('node1:4245');
  });

  it('says what to do when no flow API is found', () => {
    const candidates = [join(dir, 'lab', 'observer.sock'), join(dir, 'observer.sock')];
    expect(() => findObserverAddress(undefined, {}, candidates)).toThrow(
      new RegExp(
        `no weir flow API found \\(looked for ${candidates.join(', ')}\\): start a lab with \`weir lab up\`, run the agent on this node, or pass --server ADDRESS`,
      ),
    );
  });

  it('serves over TCP when asked, with the same API', async () => {
    const observer = new Observer({ context: makeContext() });
    const server = await startObserverServer(observer, { tcpAddress: '127.0.0.1:0' });
    const client = new ObserverClient(server.addresses[0]!);
    try {
      expect(server.addresses[0]).toMatch(/^127\.0\.0\.1:\d+$/);
      expect(server.addresses[0]).not.toBe('127.0.0.1:0');
      observer.ingest([denied()]);
      const rs = await client.collect({ number: 5 });
      expect(rs.filter((r) => r.flow)).toHaveLength(1);
    } finally {
      client.close();
      await server.close();
    }
  });
});
