/**
 * Kubernetes objects as the API server sends them (wire JSON), and `slim`, which drops what
 * weir never reads before an object is cached.
 */

/** A Kubernetes object as the API server sends it. */
export interface WireObject {
  apiVersion?: string;
  kind?: string;
  metadata?: { name?: string; namespace?: string; resourceVersion?: string; [k: string]: unknown };
  [k: string]: unknown;
}

/** "namespace/name" or "name" for cluster-scoped objects. */
export function objectRef(o: WireObject): string {
  const ns = o.metadata?.namespace;
  return ns ? `${ns}/${o.metadata?.name ?? ''}` : (o.metadata?.name ?? '');
}

const LAST_APPLIED = 'kubectl.kubernetes.io/last-applied-configuration';
/** Pod fields weir never reads and that make up much of a Pod's size. */
const POD_SPEC_UNUSED = ['volumes', 'tolerations', 'affinity'] as const;
const POD_STATUS_UNUSED = [
  'conditions',
  'containerStatuses',
  'initContainerStatuses',
  'ephemeralContainerStatuses',
] as const;
const CONTAINER_UNUSED = [
  'env',
  'envFrom',
  'volumeMounts',
  'resources',
  'livenessProbe',
  'readinessProbe',
  'startupProbe',
  'command',
  'args',
] as const;

/**
 * Drops what weir never reads before an object is cached (as client-go's transform functions do):
 * managedFields and kubectl's last-applied annotation everywhere, and the bulky parts of Pods.
 * Mutates and returns `o`.
 */
export function slim(o: WireObject): WireObject {
  const meta = o.metadata as Record<string, unknown> | undefined;
  if (meta) {
    delete meta.managedFields;
    const ann = meta.annotations as Record<string, string> | undefined;
    if (ann && LAST_APPLIED in ann) delete ann[LAST_APPLIED];
  }
  if (o.kind === 'Pod') {
    const spec = o.spec as Record<string, unknown> | undefined;
    const status = o.status as Record<string, unknown> | undefined;
    for (const k of POD_SPEC_UNUSED) delete spec?.[k];
    for (const k of POD_STATUS_UNUSED) delete status?.[k];
    for (const list of ['containers', 'initContainers'] as const) {
      const cs = spec?.[list];
      if (Array.isArray(cs))
        for (const c of cs as Array<Record<string, unknown>>) for (const k of CONTAINER_UNUSED) delete c[k];
    }
  }
  return o;
}

/**
 * Members weir never reads whose values are arrays, as the API server names them: what `slim`
 * drops anyway (and Node images, owner references, finalizers, host IPs). None of the fields
 * weir reads has one of these names, and a label, annotation or matchLabels value is a string,
 * never an array.
 */
export const UNREAD_ARRAYS = [
  'managedFields',
  'ownerReferences',
  'finalizers',
  'conditions',
  'containerStatuses',
  'initContainerStatuses',
  'ephemeralContainerStatuses',
  'volumes',
  'volumeMounts',
  'tolerations',
  'env',
  'envFrom',
  'images',
  'hostIPs',
  'command',
  'args',
  'topologySpreadConstraints',
] as const;

/**
 * Members weir never reads whose values are objects: annotations, a container's probes,
 * resources and security context, affinity, a Node's capacity and info. None of the fields weir
 * reads that hold an object has one of these names (an EndpointSlice's `conditions` is an
 * object weir reads: it is not here); label and annotation values are strings.
 */
export const UNREAD_OBJECTS = [
  'annotations',
  'livenessProbe',
  'readinessProbe',
  'startupProbe',
  'lifecycle',
  'resources',
  'securityContext',
  'affinity',
  'dnsConfig',
  'nodeInfo',
  'capacity',
  'allocatable',
  'daemonEndpoints',
] as const;

const ARRAY_NAMES = UNREAD_ARRAYS.map((k) => Buffer.from(k));
const OBJECT_NAMES = UNREAD_OBJECTS.map((k) => Buffer.from(k));
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const COLON = 0x3a;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;

/**
 * From `i` inside a JSON string, the index of its closing quote; else `end` when the text ends
 * first, or `end + 1` when it ends on a backslash (the next piece's first byte is escaped).
 */
function closingQuote(b: Buffer, i: number, end: number): number {
  for (; i < end; i++) {
    const c = b[i];
    if (c === QUOTE) return i;
    if (c === BACKSLASH) i++;
  }
  return i;
}

/** Where the cutter is between two bytes (`UnreadCut`). */
const enum At {
  /** Outside strings, copying. */
  Text,
  /** Inside a string outside a cut member, copying. */
  String,
  /** Right after a string in the text: a key if a colon follows. */
  AfterString,
  /** Right after a string and a colon: a member's value opens here. */
  AfterColon,
  /** Inside a member being cut (`depth` containers deep), not copying. */
  Cutting,
  /** Right after a member cut without the comma before it: the comma after it goes too. */
  AfterCut,
}

/**
 * Removes from a JSON text, before it is parsed, every member named in `UNREAD_ARRAYS` whose
 * value is an array (`"managedFields":[...]`, `"containerStatuses":[...]`, ...) and every member
 * named in `UNREAD_OBJECTS` whose value is an object (`"livenessProbe":{...}`, ...): about four
 * fifths of a Pod as the kubelet and the controllers leave it, and most of its small objects,
 * which the agent would parse only to drop.
 *
 * One pass over the text, strings skipped whole (escapes included), so nothing inside a string
 * is taken for structure: a string followed by `:` is a key; when its value opens with `[` or `{`,
 * the key is one of those names, whole, and follows `{` or `,` (JSON as the API server writes it:
 * no whitespace), the member is cut, with one comma beside it (the one before it, unless a member
 * cut just before took that one; else the one after) so the text stays valid JSON. A member whose
 * value does not end within the text is left as it is. Linear in the text: each byte is read
 * once.
 *
 * The text may come in pieces (`push` each, then `end`): a response's chunks are cut as they
 * arrive and only the kept text is copied, into one buffer, instead of joining the chunks first.
 * Given one buffer as both the text and the output, it works in place (`withoutUnread`).
 */
export class UnreadCut {
  private out: Buffer;
  /** Bytes of `out` kept so far. */
  private len = 0;
  private at = At.Text;
  /** The previous byte was a backslash inside a string. */
  private escaped = false;
  /** Inside a string of a member being cut. */
  private cutString = false;
  /** Containers open in the member being cut. */
  private depth = 0;
  /** Position in `out` of the opening quote of the last string of the text. */
  private key = 0;
  /** Position in `out` of the closing quote of that string. */
  private keyEnd = 0;
  /** While cutting: where `out` ended before the cut (key and bracket kept there) and the text since. */
  private uncut = 0;
  private since: Buffer[] = [];
  /** The member being cut took the comma before it. */
  private commaTaken = false;

  /** `out` is where the kept text goes (grown as needed); the text itself when cutting in place. */
  constructor(out?: Buffer) {
    // room for the kept text of a list page of 500 Pods (about 0.45 MB) without growing
    this.out = out ?? Buffer.allocUnsafe(1 << 20);
  }

  /** Makes room for `n` more bytes in `out`. */
  private room(n: number): void {
    if (this.len + n <= this.out.length) return;
    let size = this.out.length * 2;
    while (size < this.len + n) size *= 2;
    const grown = Buffer.allocUnsafe(size);
    this.out.copy(grown, 0, 0, this.len);
    this.out = grown;
  }

  /**
   * Appends `c[from, to)` to the kept text. Short pieces (most of them: the text between two cut
   * members) are copied byte by byte, which is cheaper than a native copy's call; forwards, so
   * in place (the kept text never ahead of the text read) it is a move down.
   */
  private keep(c: Buffer, from: number, to: number): void {
    const n = to - from;
    if (n <= 0) return;
    this.room(n);
    const out = this.out;
    if (c === out && from === this.len) this.len += n;
    else if (n > 256) {
      c.copy(out, this.len, from, to);
      this.len += n;
    } else {
      let at = this.len;
      for (let k = from; k < to; k++) out[at++] = c[k]!;
      this.len = at;
    }
  }

  /** Byte `p` of the kept text, where the bytes from `len` on are still `c[seg...]`. */
  private byteAt(c: Buffer, seg: number, p: number): number {
    return p < this.len ? this.out[p]! : c[seg + p - this.len]!;
  }

  /** Whether the key whose quotes are at `key` and `keyEnd` is one of `names`. */
  private isOneOf(c: Buffer, seg: number, names: readonly Buffer[]): boolean {
    const from = this.key + 1;
    const n = this.keyEnd - from;
    next: for (const name of names) {
      if (name.length !== n) continue;
      for (let k = 0; k < n; k++) if (name[k] !== this.byteAt(c, seg, from + k)) continue next;
      return true;
    }
    return false;
  }

  /** Cuts the next piece of the text. */
  push(c: Buffer): void {
    const n = c.length;
    /** `c[seg, i)` is kept text not yet copied to `out`. */
    let seg = 0;
    let i = 0;
    while (i < n) {
      switch (this.at) {
        case At.Cutting: {
          let depth = this.depth;
          let inString = this.cutString;
          if (inString) {
            // a string of the member that the previous piece ended in
            i = closingQuote(c, this.escaped ? i + 1 : i, n);
            this.escaped = i > n;
            if (i < n) {
              inString = false;
              i++;
            }
          }
          for (; i < n; i++) {
            const b = c[i];
            if (b === QUOTE) {
              i = closingQuote(c, i + 1, n);
              if (i >= n) {
                inString = true;
                this.escaped = i > n;
                break;
              }
            } else if (b === OPEN_ARRAY || b === OPEN_OBJECT) depth++;
            else if ((b === CLOSE_ARRAY || b === CLOSE_OBJECT) && --depth === 0) break;
          }
          this.depth = depth;
          this.cutString = inString;
          if (i >= n) {
            this.since.push(seg === 0 ? c : c.subarray(seg));
            return;
          }
          i++;
          seg = i;
          this.since = [];
          this.at = this.commaTaken ? At.Text : At.AfterCut;
          break;
        }
        case At.String:
          i = closingQuote(c, this.escaped ? i + 1 : i, n);
          this.escaped = i > n;
          if (i >= n) break;
          this.keyEnd = this.len + i - seg;
          i++;
          this.at = At.AfterString;
          break;
        case At.AfterString:
          if (c[i] === COLON) {
            i++;
            this.at = At.AfterColon;
          } else this.at = At.Text;
          break;
        case At.AfterColon: {
          const open = c[i];
          this.at = At.Text;
          if (open !== OPEN_ARRAY && open !== OPEN_OBJECT) break;
          if (this.key < 1) break;
          const before = this.byteAt(c, seg, this.key - 1);
          if (before !== OPEN_OBJECT && before !== COMMA) break;
          if (!this.isOneOf(c, seg, open === OPEN_ARRAY ? ARRAY_NAMES : OBJECT_NAMES)) break;
          // kept up to the bracket, so a value that never ends can be given back whole (`end`)
          i++;
          this.keep(c, seg, i);
          seg = i;
          this.uncut = this.len;
          this.commaTaken = before === COMMA;
          this.len = this.commaTaken ? this.key - 1 : this.key;
          this.depth = 1;
          this.cutString = false;
          this.at = At.Cutting;
          break;
        }
        case At.AfterCut:
          this.at = At.Text;
          if (c[i] === COMMA) {
            i++;
            seg = i;
          }
          break;
        default: {
          while (i < n && c[i] !== QUOTE) i++;
          if (i === n) break;
          this.key = this.len + i - seg;
          i++;
          this.escaped = false;
          this.at = At.String;
        }
      }
    }
    this.keep(c, seg, n);
  }

  /** The kept text: a view of the output buffer. */
  end(): Buffer {
    while (this.at === At.Cutting) {
      // the member's value never ends: it stays, with whatever followed it (cut in turn)
      const pieces = this.since;
      this.since = [];
      this.len = this.uncut;
      this.at = At.Text;
      for (const p of pieces) this.push(p);
    }
    return this.out.subarray(0, this.len);
  }
}

/**
 * `UnreadCut` of one whole text, in place: the kept text is moved down within `b` (no second
 * buffer), and the returned Buffer is the kept part of `b`, whose bytes past it are left as they
 * were.
 */
export function withoutUnread(b: Buffer): Buffer {
  const cut = new UnreadCut(b);
  cut.push(b);
  return cut.end();
}
