/**
 * Expected truth tables in the style of the upstream NetworkPolicy e2e suite: start from
 * "everything connects" (or nothing), narrow with expectations about peers, and let a pod
 * always reach itself (loopback never crosses the pod's veth, and Kubernetes lets no policy
 * block it).
 */
export interface Peer {
  namespace?: string;
  pod?: string;
}

export interface Cell {
  from: string;
  to: string;
  connected: boolean;
}

export const NAMESPACES = ['x', 'y', 'z'] as const;
export const PODS = ['a', 'b', 'c'] as const;
export const ALL_PODS: string[] = NAMESPACES.flatMap((ns) => PODS.map((p) => `${ns}/${p}`));

function matches(peer: Peer | undefined, key: string): boolean {
  if (!peer) return true;
  const [ns, pod] = key.split('/');
  return (peer.namespace === undefined || peer.namespace === ns) && (peer.pod === undefined || peer.pod === pod);
}

export class Reachability {
  private readonly cells = new Map<string, boolean>();

  constructor(
    defaultConnected: boolean,
    readonly pods: string[] = ALL_PODS,
  ) {
    for (const f of pods) for (const t of pods) this.cells.set(`${f}>${t}`, defaultConnected);
  }

  /** Sets every cell from a pod matching `from` to a pod matching `to`. */
  expect(from: Peer | undefined, to: Peer | undefined, connected: boolean): this {
    for (const f of this.pods)
      for (const t of this.pods) if (matches(from, f) && matches(to, t)) this.cells.set(`${f}>${t}`, connected);
    return this;
  }

  /** Every pod's traffic to itself connects (applied last, as upstream's AllowLoopback). */
  allowLoopback(): this {
    for (const p of this.pods) this.cells.set(`${p}>${p}`, true);
    return this;
  }

  get(from: string, to: string): boolean {
    const v = this.cells.get(`${from}>${to}`);
    if (v === undefined) throw new Error(`no expectation for ${from} -> ${to}`);
    return v;
  }

  /** Cells where `observed` differs from the expectation. */
  mismatches(observed: Cell[]): Cell[] {
    return observed.filter((c) => this.get(c.from, c.to) !== c.connected);
  }

  table(): string {
    const lines = [['-', ...this.pods].join('\t')];
    for (const f of this.pods) lines.push([f, ...this.pods.map((t) => (this.get(f, t) ? '.' : 'X'))].join('\t'));
    return lines.join('\n');
  }
}
