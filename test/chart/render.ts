/**
 * Renders charts/weir with test/chart/render (Go text/template + sprig + Helm's built-ins),
 * built once per test run from Debian's Go packages (GOPATH mode, offline).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseAllDocuments } from 'yaml';
import type { RenderedObject } from './validate.js';

export const CHART = resolve('charts/weir');
const GO_ENV = { ...process.env, GOPATH: '/usr/share/gocode', GO111MODULE: 'off', GOFLAGS: '' };

export interface Rendered {
  objects: RenderedObject[];
  /** By "Kind/name". */
  byKind: (kind: string) => RenderedObject[];
  notes: string;
}

export class Renderer {
  private readonly dir = mkdtempSync(join(tmpdir(), 'wk8-render-'));
  private readonly bin = join(this.dir, 'render');

  constructor() {
    execFileSync('go', ['build', '-o', this.bin, '.'], {
      cwd: resolve('test/chart/render'),
      env: GO_ENV,
      stdio: 'pipe',
    });
  }

  /** Renders; throws with the renderer's message when rendering fails (as `helm template` would). */
  render(valueFiles: string[] = [], opts: { name?: string; namespace?: string } = {}): Rendered {
    const args = ['-chart', CHART, '-name', opts.name ?? 'weir', '-namespace', opts.namespace ?? 'kube-system'];
    for (const f of valueFiles) args.push('-f', f);
    const res = spawnSync(this.bin, args, { encoding: 'utf8' });
    if (res.status !== 0) throw new Error(res.stderr.trim());
    const out = JSON.parse(res.stdout) as { manifests: Array<{ template: string; content: string }>; notes: string };
    const objects: RenderedObject[] = [];
    for (const m of out.manifests) {
      for (const doc of parseAllDocuments(m.content)) {
        if (doc.errors.length) throw new Error(`${m.template}: ${doc.errors[0]!.message}`);
        const o = doc.toJS() as RenderedObject | null;
        if (o) objects.push(o);
      }
    }
    return { objects, notes: out.notes, byKind: (kind) => objects.filter((o) => o.kind === kind) };
  }

  close(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}
