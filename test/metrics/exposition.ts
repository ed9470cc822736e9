/**
 * Parses Prometheus text exposition with the Prometheus project's own Python client
 * parser (Debian's python3-prometheus-client), so "valid" means what a real parser says.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';

export interface ParsedSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}
export interface ParsedFamily {
  name: string;
  type: string;
  samples: ParsedSample[];
}

const PY = `
import json, math, sys
from prometheus_client.parser import text_string_to_metric_families
def value(v):
    return v if math.isfinite(v) else repr(v)  # JSON has no NaN or infinities: 'nan', 'inf', '-inf'
out = []
for fam in text_string_to_metric_families(sys.stdin.read()):
    out.append({"name": fam.name, "type": fam.type, "samples": [{"name": s.name, "labels": s.labels, "value": value(s.value)} for s in fam.samples]})
print(json.dumps(out))
`;

const NON_FINITE: Record<string, number> = { nan: Number.NaN, inf: Infinity, '-inf': -Infinity };

export function parseExposition(text: string): Promise<ParsedFamily[]> {
  const python = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
  return new Promise((resolve, reject) => {
    const child = execFile(python, ['-c', PY], { maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`the Prometheus parser rejected the exposition: ${stderr || err.message}`));
      else {
        try {
          const fams = JSON.parse(stdout) as Array<ParsedFamily & { samples: Array<{ value: number | string }> }>;
          for (const f of fams)
            for (const s of f.samples) if (typeof s.value === 'string') s.value = NON_FINITE[s.value] ?? Number.NaN;
          resolve(fams);
        } catch (e) {
          reject(e instanceof Error ? e : new Error(String(e)));
        }
      }
    });
    child.stdin!.end(text);
  });
}

/** The value of one sample, or undefined. */
export function sample(fams: ParsedFamily[], name: string, labels: Record<string, string> = {}): number | undefined {
  for (const f of fams) {
    for (const s of f.samples) {
      if (
        s.name === name &&
        Object.entries(labels).every(([k, v]) => s.labels[k] === v) &&
        Object.keys(s.labels).length === Object.keys(labels).length
      )
        return s.value;
    }
  }
  return undefined;
}
