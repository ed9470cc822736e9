/**
 * `withoutUnreadArrays` cuts members such as `"managedFields":[...]` out of JSON text before it is
 * parsed. Checked against an independent reference on parsed objects (every member so named whose
 * value is an array removed, at any depth), over random JSON as the API server writes it (compact)
 * with keys, strings and label values built to trip a text scanner: escaped quotes and backslashes,
 * brackets and the keys' own text inside strings, labels so named, non-array values, neighbours.
 */
import { UNREAD_ARRAYS, withoutUnreadArrays } from '../../agent/sources/kube-wire.js';
import { kubeletNode, kubeletPod } from '../bench/kube-objects.js';

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const UNREAD = new Set<string>(UNREAD_ARRAYS);

/** The reference: drops every member so named that holds an array, at every depth. */
function reference(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(reference);
  if (v === null || typeof v !== 'object') return v;
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) if (!(UNREAD.has(k) && Array.isArray(x))) out[k] = reference(x);
  return out;
}

const TRICKY = [
  'managedFields',
  '"managedFields":[',
  '"env":[',
  'conditions',
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
        ? UNREAD_ARRAYS[Math.floor(r() * UNREAD_ARRAYS.length)]!
        : Array.from({ length: 1 + Math.floor(r() * 3) }, () => TRICKY[Math.floor(r() * TRICKY.length)]).join('');
    o[key] = randomValue(r, depth + 1);
  }
  return o;
}

function check(v: unknown): void {
  const text = Buffer.from(JSON.stringify(v));
  expect(JSON.parse(withoutUnreadArrays(text).toString('utf8'))).toEqual(reference(JSON.parse(text.toString())));
}

describe('withoutUnreadArrays', () => {
  it('removes exactly the unread arrays from 20,000 random JSON documents', () => {
    const r = mulberry32(15);
    for (let i = 0; i < 20_000; i++) check(randomValue(r, 0));
  });

  it('leaves Pods and Nodes as the kubelet writes them whole but for the unread arrays, in a list page', () => {
    const pod = kubeletPod('ns-1', 7, 'node-1', '172.16.0.2', '10.64.1.9', 'app-1');
    // labels and annotations so named stay: they are strings
    (pod.metadata.labels as Record<string, string>).managedFields = 'kept';
    (pod.metadata.labels as Record<string, string>).env = 'prod';
    pod.metadata.annotations = { managedFields: '[1,2]', note: 'say "managedFields":[ here' };
    const page = { kind: 'PodList', metadata: { resourceVersion: '9' }, items: [pod, kubeletNode(3), pod] };
    check(page);
    const out = JSON.parse(withoutUnreadArrays(Buffer.from(JSON.stringify(page))).toString()) as {
      items: Array<{ metadata: Record<string, unknown> }>;
    };
    expect(out.items[0]!.metadata.managedFields).toBeUndefined();
    expect((out.items[0]!.metadata.labels as Record<string, string>).managedFields).toBe('kept');
    expect((out.items[0]!.metadata.labels as Record<string, string>).env).toBe('prod');
    expect(JSON.stringify(out).length).toBeLessThan(JSON.stringify(page).length * 0.5);
  });

  it('leaves text it does not recognise as the API server writes it alone', () => {
    for (const text of [
      '{"managedFields": [1]}',
      '{"managedFields":{"a":[1]}}',
      '{"a":"\\"managedFields\\":[1]"}',
      '[',
    ]) {
      const b = Buffer.from(text);
      expect(withoutUnreadArrays(b).toString()).toBe(text);
    }
  });
});
