/**
 * Kubernetes label-selector syntax ("app=web,tier!=db,env in (a,b),!canary") matched
 * against flow endpoint labels ("k8s:app=web", "reserved:world"). A selector key
 * without a source ("app") matches that key from any source; "k8s:app" only from k8s.
 */

type Op = 'eq' | 'neq' | 'in' | 'notin' | 'exists' | 'notexists';
interface Requirement {
  key: string;
  op: Op;
  values: string[];
}

export type LabelMatcher = (labels: readonly string[]) => boolean;

function splitTopLevel(s: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of s) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === ',' && depth === 0) {
      parts.push(cur);
      cur = '';
    } else cur += ch;
  }
  parts.push(cur);
  return parts.map((p) => p.trim()).filter((p) => p.length > 0);
}

function parseRequirement(raw: string, selector: string): Requirement {
  const setMatch = /^(\S+)\s+(in|notin)\s*\((.*)\)$/.exec(raw);
  if (setMatch) {
    const values = setMatch[3]!.split(',').map((v) => v.trim());
    return { key: setMatch[1]!, op: setMatch[2] === 'in' ? 'in' : 'notin', values };
  }
  const cmp = /^([^!=\s]+)\s*(==|!=|=)\s*(\S*)$/.exec(raw);
  if (cmp) return { key: cmp[1]!, op: cmp[2] === '!=' ? 'neq' : 'eq', values: [cmp[3]!] };
  const notExists = /^!\s*([^!=\s(),]+)$/.exec(raw);
  if (notExists) return { key: notExists[1]!, op: 'notexists', values: [] };
  if (/^[^!=\s(),]+$/.test(raw)) return { key: raw, op: 'exists', values: [] };
  throw new Error(
    `invalid label selector "${selector}" near "${raw}": use key=value, key!=value, key, !key, key in (a,b) or key notin (a,b)`,
  );
}

/** "k8s:app=web" -> ["k8s", "app", "web"]; "reserved:world" -> ["reserved", "world", ""]. */
function splitLabel(label: string): [string, string, string] {
  const eq = label.indexOf('=');
  const kv = eq >= 0 ? label.slice(0, eq) : label;
  const value = eq >= 0 ? label.slice(eq + 1) : '';
  const colon = kv.indexOf(':');
  return colon >= 0 ? [kv.slice(0, colon), kv.slice(colon + 1), value] : ['', kv, value];
}

function valuesOf(labels: readonly string[], key: string): string[] {
  const out: string[] = [];
  for (const l of labels) {
    const [source, k, v] = splitLabel(l);
    if (k === key || (source !== '' && `${source}:${k}` === key)) out.push(v);
  }
  return out;
}

export function compileLabelSelector(selector: string): LabelMatcher {
  const reqs = splitTopLevel(selector).map((r) => parseRequirement(r, selector));
  if (reqs.length === 0) throw new Error(`empty label selector: give one like app=web`);
  return (labels) =>
    reqs.every((r) => {
      const vals = valuesOf(labels, r.key);
      switch (r.op) {
        case 'exists':
          return vals.length > 0;
        case 'notexists':
          return vals.length === 0;
        case 'eq':
        case 'in':
          return vals.some((v) => r.values.includes(v));
        case 'neq':
        case 'notin':
          return !vals.some((v) => r.values.includes(v));
      }
    });
}
