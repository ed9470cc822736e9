/** metav1.LabelSelector matching and its canonical text. */
import type { LabelSelector, Labels } from '../store/types.js';

export const SELECTOR_OPERATORS = ['In', 'NotIn', 'Exists', 'DoesNotExist'] as const;

/** True when the selector selects the labels. An empty selector selects everything. */
export function selectorMatches(sel: LabelSelector, labels: Labels): boolean {
  for (const k in sel.matchLabels) if (labels[k] !== sel.matchLabels[k]) return false;
  for (const e of sel.matchExpressions) {
    const v = labels[e.key];
    switch (e.operator) {
      case 'In':
        if (v === undefined || !e.values.includes(v)) return false;
        break;
      case 'NotIn':
        if (v !== undefined && e.values.includes(v)) return false;
        break;
      case 'Exists':
        if (v === undefined) return false;
        break;
      case 'DoesNotExist':
        if (v !== undefined) return false;
        break;
      default:
        // Invalid operators are rejected by validation; never match if one slips through.
        return false;
    }
  }
  return true;
}

export function isEmptySelector(sel: LabelSelector): boolean {
  return Object.keys(sel.matchLabels).length === 0 && sel.matchExpressions.length === 0;
}

/** Canonical text: equal selectors give equal text. */
export function selectorText(sel: LabelSelector): string {
  const parts = Object.keys(sel.matchLabels)
    .sort()
    .map((k) => `${k}=${sel.matchLabels[k]}`);
  for (const e of sel.matchExpressions) {
    const vals = [...e.values].sort().join(',');
    switch (e.operator) {
      case 'In':
        parts.push(`${e.key} in (${vals})`);
        break;
      case 'NotIn':
        parts.push(`${e.key} notin (${vals})`);
        break;
      case 'Exists':
        parts.push(e.key);
        break;
      case 'DoesNotExist':
        parts.push(`!${e.key}`);
        break;
      default:
        parts.push(`${e.key} ${e.operator} (${vals})`);
    }
  }
  return parts.length === 0 ? '{}' : [...new Set(parts)].sort().join(',');
}

/** Which requirements of the selector the labels fail, in words (for explain). */
export function selectorMisses(sel: LabelSelector, labels: Labels): string[] {
  const out: string[] = [];
  for (const k of Object.keys(sel.matchLabels)) {
    const v = labels[k];
    if (v !== sel.matchLabels[k])
      out.push(
        v === undefined
          ? `has no label ${k} (wants ${k}=${sel.matchLabels[k]})`
          : `has ${k}=${v}, wants ${k}=${sel.matchLabels[k]}`,
      );
  }
  for (const e of sel.matchExpressions) {
    const one: LabelSelector = { matchLabels: {}, matchExpressions: [e] };
    if (!selectorMatches(one, labels)) {
      const v = labels[e.key];
      out.push(`fails "${selectorText(one)}" (${v === undefined ? `no label ${e.key}` : `${e.key}=${v}`})`);
    }
  }
  return out;
}
