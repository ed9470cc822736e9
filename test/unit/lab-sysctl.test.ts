/**
 * The node switches shared by labs (agent/lab/sysctl.ts): the first lab records their values and
 * turns them on, the last one puts back what the first found. Runs against stand-in files for the
 * /proc/sys switches, because flipping the machine's real forwarding switch off would cut the
 * traffic of everything else on it; the e2e test (test/e2e/lab-host.test.ts) drives the real ones.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { acquireSysctls, releaseSysctls } from '../../agent/lab/sysctl.js';

describe('lab node switches', () => {
  let dir: string;
  let state: string;
  let switches: string[];
  const values = () => switches.map((p) => readFileSync(p, 'utf8').trim());
  const lab = (name: string) => {
    const runDir = join(dir, name);
    mkdirSync(runDir, { recursive: true });
    return runDir;
  };

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'weir-sysctl-'));
    state = join(dir, 'run', 'lab-sysctl.json');
    switches = [join(dir, 'ip_forward'), join(dir, 'forwarding')];
    writeFileSync(switches[0]!, '0\n');
    writeFileSync(switches[1]!, '1\n');
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('is turned on by the first lab and put back only by the last, to what the first found', () => {
    const a = lab('a');
    const b = lab('b');
    acquireSysctls(a, state, switches);
    expect(values()).toEqual(['1', '1']);
    acquireSysctls(b, state, switches);
    acquireSysctls(b, state, switches); // again (a restarted agent): still one holder
    expect((JSON.parse(readFileSync(state, 'utf8')) as { holders: string[] }).holders).toEqual([a, b]);
    expect(releaseSysctls(a, state, switches)).toEqual([]);
    expect(values()).toEqual(['1', '1']);
    expect(releaseSysctls(a, state, switches)).toEqual([]); // not a holder any more: nothing happens
    expect(releaseSysctls(b, state, switches)).toEqual([switches[0]]);
    expect(values()).toEqual(['0', '1']);
    expect(existsSync(state)).toBe(false);
  });

  it('forgets a lab whose run dir is gone, so the last live lab still restores', () => {
    const a = lab('a');
    const b = lab('b');
    acquireSysctls(a, state, switches);
    acquireSysctls(b, state, switches);
    rmSync(a, { recursive: true }); // removed without `lab down`
    expect(releaseSysctls(b, state, switches)).toEqual([switches[0]]);
    expect(values()).toEqual(['0', '1']);
  });

  it('keeps a value someone else had set on before the first lab', () => {
    writeFileSync(switches[0]!, '1\n');
    const a = lab('a');
    acquireSysctls(a, state, switches);
    expect(releaseSysctls(a, state, switches)).toEqual([]);
    expect(values()).toEqual(['1', '1']);
  });
});
