/**
 * The real helm (.tools/bin/helm, put there by `make deps` through scripts/tools.sh): `helm template`
 * renders the chart's objects (hooks such as the `helm test` pod included), `helm install
 * --dry-run=client` gives the NOTES, `helm lint --strict` lints. Helm's own directories live in a
 * temporary home, so nothing of the user's helm configuration is read or written.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseAllDocuments } from 'yaml';
import type { RenderedObject } from './validate.js';

export const CHART = resolve('charts/weir');
export const HELM = resolve('.tools/bin/helm');

export interface Rendered {
  objects: RenderedObject[];
  byKind: (kind: string) => RenderedObject[];
}

export interface RenderOptions {
  /** Values files (-f), in order. */
  values?: string[];
  /** --set expressions, after the files. */
  set?: string[];
  name?: string;
  namespace?: string;
  /** Another chart directory (a parent chart using weir as a subchart). */
  chart?: string;
}

export class Helm {
  private readonly home = mkdtempSync(join(tmpdir(), 'wk8-helm-'));
  private readonly env: NodeJS.ProcessEnv;

  constructor() {
    if (!existsSync(HELM)) throw new Error(`${HELM} is missing: run 'make deps' (scripts/tools.sh installs helm)`);
    this.env = {
      PATH: process.env.PATH,
      HOME: this.home,
      HELM_CACHE_HOME: join(this.home, 'cache'),
      HELM_CONFIG_HOME: join(this.home, 'config'),
      HELM_DATA_HOME: join(this.home, 'data'),
    };
  }

  /** Runs helm; throws with helm's own message when it fails. */
  run(args: string[]): string {
    const res = spawnSync(HELM, args, { encoding: 'utf8', env: this.env });
    if (res.error) throw res.error;
    if (res.status !== 0)
      throw new Error(
        `helm ${args[0]} failed: ${[res.stdout, res.stderr]
          .filter((x) => x.trim())
          .join('\n')
          .trim()}`,
      );
    return res.stdout;
  }

  private args(o: RenderOptions): string[] {
    const a = [o.name ?? 'weir', o.chart ?? CHART, '--namespace', o.namespace ?? 'kube-system'];
    for (const f of o.values ?? []) a.push('-f', f);
    for (const s of o.set ?? []) a.push('--set', s);
    return a;
  }

  template(o: RenderOptions = {}): Rendered {
    const out = this.run(['template', ...this.args(o)]);
    const objects: RenderedObject[] = [];
    for (const doc of parseAllDocuments(out)) {
      if (doc.errors.length) throw new Error(`helm template printed invalid YAML: ${doc.errors[0]!.message}`);
      const obj = doc.toJS() as RenderedObject | null;
      if (obj) objects.push(obj);
    }
    return { objects, byKind: (kind) => objects.filter((x) => x.kind === kind) };
  }

  /** NOTES.txt as `helm install` prints it (client-side dry run: no cluster). */
  notes(o: RenderOptions = {}): string {
    const rel = JSON.parse(this.run(['install', ...this.args(o), '--dry-run=client', '-o', 'json'])) as {
      info: { notes?: string };
    };
    return rel.info.notes ?? '';
  }

  /** `helm lint --strict` with these values; returns helm's output, throws when it fails. */
  lint(values: string[] = []): string {
    return this.run(['lint', '--strict', CHART, ...values.flatMap((f) => ['-f', f])]);
  }

  close(): void {
    rmSync(this.home, { recursive: true, force: true });
  }
}
