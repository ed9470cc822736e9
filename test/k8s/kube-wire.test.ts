/**
 * `withoutUnread` cuts members such as `"managedFields":[...]` and `"livenessProbe":{...}` out of
 * JSON text before it is parsed. Checked against an independent reference on parsed objects (every
 * member so named whose value is an array, or an object for the object names, removed at any
 * depth), over random JSON as the API server writes it (compact) with keys, strings and label
 * values built to trip a text scanner: escaped quotes and backslashes, brackets and the keys' own
 * text inside strings, labels so named, values of the other kind, neighbours.
 */
import { UNREAD_ARRAYS, UNREAD_OBJECTS, UnreadCut, withoutUnread } from '../../agent/sources/kube-wire.js';
import { endpointSlice, kubeletNode, kubeletPod, namespacePolicies, service } from '../bench/kube-objects.js';
import { toKubeObject } from '../../agent/store/convert.js';
import { validateObject } from '../../agent/store/validate.js';
import { mulberry32 } from '../prng.js';

const ARRAYS = new Set<string>(UNREAD_ARRAYS);
const OBJECTS = new Set<string>(UNREAD_OBJECTS);
const NAMES: readonly string[] = [...UNREAD_ARRAYS, ...UNREAD_OBJECTS];

/** The reference: drops every member so named that holds an array (an object), at every depth. */
function reference(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(reference);
  if (v === null || typeof v !== 'object') return v;
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) {
    const unread = Array.isArray(x) ? ARRAYS.has(k) : x !== null && typeof x === 'object' && OBJECTS.has(k);
    if (!unread) out[k] = reference(x);
  }
  return out;
}

const TRICKY = [
  'managedFields',
  '"managedFields":[',
  '"env":[',
  '"livenessProbe":{',
  'conditions',
  'annotations',
  '\\',
  '\\"',
  '"',
  '[',
  ']',
  '{',
  '}',
  ',',
  'é',
  '雪',
  '\u0000',
  '\n',
  'a',
  ':',
];

function randomValue(r: () => number, depth: number): unknown {
  const pick = r();
  if (depth > 4 || pick < 0.3) {
    const s = r();
    if (s < 0.15) return Math.floor(r() * 1000);
    if (s < 0.2) return null;
    if (s < 0.25) return r() < 0.5;
    return Array.from({ length: Math.floor(r() * 4) }, () => TRICKY[Math.floor(r() * TRICKY.length)]).join('');
  }
  if (pick < 0.55) return Array.from({ length: Math.floor(r() * 4) }, () => randomValue(r, depth + 1));
  const o: Record<string, unknown> = {};
  const n = Math.floor(r() * 5);
  for (let i = 0; i < n; i++) {
    const key =
      r() < 0.35
        ? NAMES[Math.floor(r() * NAMES.length)]!
        : Array.from({ length: 1 + Math.floor(r() * 3) }, () => TRICKY[Math.floor(r() * TRICKY.length)]).join('');
    o[key] = randomValue(r, depth + 1);
  }
  return o;
}

function check(v: unknown): void {
  const text = Buffer.from(JSON.stringify(v));
  // before the cut: it works in place
  const expected = reference(JSON.parse(text.toString()));
  expect(JSON.parse(withoutUnread(text).toString('utf8'))).toEqual(expected);
}

/** The text cut in pieces (as a response's chunks come): each piece a Buffer of its own. */
function cutInPieces(text: Buffer, r: () => number): Buffer {
  const cut = new UnreadCut(Buffer.allocUnsafe(1 + Math.floor(r() * 64)));
  for (let from = 0; from < text.length;) {
    const to = Math.min(text.length, from + 1 + Math.floor(r() * (r() < 0.5 ? 4 : 200)));
    cut.push(Buffer.from(text.subarray(from, to)));
    from = to;
  }
  return cut.end();
}

describe('withoutUnread', () => {
  it('removes exactly the unread arrays from 20,000 random JSON documents', () => {
    const r = mulberry32(15);
    for (let i = 0; i < 20_000; i++) check(randomValue(r, 0));
  });

  it('leaves Pods and Nodes as the kubelet writes them whole but for the unread members, in a list page', () => {
    const pod = kubeletPod('ns-1', 7, 'node-1', '172.16.0.2', '10.64.1.9', 'app-1');
    // labels and annotations so named stay: they are strings
    (pod.metadata.labels as Record<string, string>).managedFields = 'kept';
    (pod.metadata.labels as Record<string, string>).env = 'prod';
    (pod.metadata.labels as Record<string, string>).annotations = 'kept';
    pod.metadata.annotations = { managedFields: '[1,2]', note: 'say "managedFields":[ here' };
    const page = { kind: 'PodList', metadata: { resourceVersion: '9' }, items: [pod, kubeletNode(3), pod] };
    check(page);
    const out = JSON.parse(withoutUnread(Buffer.from(JSON.stringify(page))).toString()) as {
      items: Array<{ metadata: Record<string, unknown> }>;
    };
    expect(out.items[0]!.metadata.managedFields).toBeUndefined();
    expect((out.items[0]!.metadata.labels as Record<string, string>).managedFields).toBe('kept');
    expect((out.items[0]!.metadata.labels as Record<string, string>).env).toBe('prod');
    expect((out.items[0]!.metadata.labels as Record<string, string>).annotations).toBe('kept');
    expect(out.items[0]!.metadata.annotations).toBeUndefined();
    expect(JSON.stringify(out).length).toBeLessThan(JSON.stringify(page).length * 0.25);
  });

  it('cuts a text that comes in pieces exactly as the whole text, wherever the pieces end', () => {
    const r = mulberry32(16);
    for (let i = 0; i < 5_000; i++) {
      const v = randomValue(r, 0);
      const text = Buffer.from(JSON.stringify(v));
      const whole = withoutUnread(Buffer.from(text)).toString('latin1');
      expect(cutInPieces(text, r).toString('latin1')).toBe(whole);
      expect(JSON.parse(cutInPieces(text, r).toString('utf8'))).toEqual(reference(v));
    }
    // text that is no JSON (truncated, unbalanced, a member whose value never ends): the same bytes too
    for (let i = 0; i < 5_000; i++) {
      const json = JSON.stringify(randomValue(r, 0));
      const from = Math.floor(r() * json.length);
      const text = Buffer.from(json.slice(r() < 0.5 ? 0 : from, from + Math.floor(r() * json.length)));
      expect(cutInPieces(text, r).toString('latin1')).toBe(withoutUnread(Buffer.from(text)).toString('latin1'));
    }
    // a list page as the kubelet writes its Pods, in chunks of a socket's size
    const page = Buffer.from(
      JSON.stringify({
        kind: 'PodList',
        items: Array.from({ length: 40 }, (_, k) => kubeletPod('ns-1', k, 'node-1', '172.16.0.2', `10.64.1.${k}`, 'a')),
      }),
    );
    const cut = new UnreadCut();
    for (let from = 0; from < page.length; from += 16_384) cut.push(page.subarray(from, from + 16_384));
    expect(cut.end().toString()).toBe(withoutUnread(Buffer.from(page)).toString());
  });

  it('leaves text it does not recognise as the API server writes it alone', () => {
    for (const text of [
      '{"managedFields": [1]}',
      '{"managedFields":{"a":[1]}}',
      '{"annotations":["a"]}',
      '{"annotations" :{}}',
      '{"managedFields":[1,{"a":"]"}',
      '{"a":"\\"managedFields\\":[1]"}',
      '[',
    ]) {
      const b = Buffer.from(text);
      expect(withoutUnread(b).toString()).toBe(text);
      for (let at = 0; at <= text.length; at++) {
        const cut = new UnreadCut();
        cut.push(Buffer.from(text.slice(0, at)));
        cut.push(Buffer.from(text.slice(at)));
        expect(cut.end().toString()).toBe(text);
      }
    }
  });

  it('keeps everything the agent reads of each kind: the Store gets the same objects, validation the same findings', () => {
    const objects = [
      { ...kubeletPod('ns-1', 7, 'node-1', '172.16.0.2', '10.64.1.9', 'app-1'), apiVersion: 'v1' },
      { ...kubeletNode(3), apiVersion: 'v1' },
      { ...service('ns-1', 'app-1', '10.96.0.10'), apiVersion: 'v1' },
      {
        ...endpointSlice('ns-1', 'app-1', 0, [{ ip: '10.64.1.9', node: 'node-1', pod: 'p' }]),
        apiVersion: 'discovery.k8s.io/v1',
      },
      ...namespacePolicies('ns-1', 5, 3).map((p) => ({ ...p, apiVersion: 'networking.k8s.io/v1' })),
    ];
    // a Pod the API server would refuse: validation must still say why after the cut
    const bad = kubeletPod('ns-1', 8, 'node-1', '172.16.0.2', '10.64.1.10', 'app-1');
    (
      (bad.spec as { containers: Array<{ ports: unknown[] }> }).containers[0]!.ports[0] as { containerPort: number }
    ).containerPort = 70000;
    objects.push({ ...bad, apiVersion: 'v1' });
    for (const o of objects) {
      const cut = JSON.parse(withoutUnread(Buffer.from(JSON.stringify(o))).toString()) as unknown;
      expect(JSON.stringify(cut).length).toBeLessThanOrEqual(JSON.stringify(o).length);
      expect(validateObject(cut)).toEqual(validateObject(o));
      if (o === objects[objects.length - 1]) expect(() => toKubeObject(cut)).toThrow(/containerPort/);
      else expect(toKubeObject(cut)).toEqual(toKubeObject(o));
    }
  });
});
