#!/usr/bin/env node
// Runs jest and ends with the plain line CI reads: "N passed, N failed".
//
// A test file that needs root (BPF, network namespaces) says so in its leading doc comment with
// `@requires root`. `--no-root` runs every other test file, wherever it lives (`make test-unit`);
// without it, a run that would include such files refuses to start unless it runs as root, so a
// non-root run never reports green with kernel suites skipped.
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';

const ROOT_PRAGMA = /^\/\*\*[\s\S]*?@requires root\b[\s\S]*?\*\//;

function testFiles(dir = 'test') {
  return readdirSync(dir, { recursive: true })
    .map((f) => join(dir, String(f)))
    .filter((f) => f.endsWith('.test.ts') && !f.includes('node_modules'));
}
const needsRoot = (file) => ROOT_PRAGMA.test(readFileSync(file, 'utf8'));
const escape = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

let argv = process.argv.slice(2);
const noRoot = argv.includes('--no-root');
argv = argv.filter((a) => a !== '--no-root');
const selectors = argv.filter((a) => !a.startsWith('-'));
const selected = (f) => selectors.length === 0 || selectors.some((s) => new RegExp(s).test(f));
const rootFiles = testFiles().filter(needsRoot);
const extra = [];
if (noRoot) {
  for (const f of rootFiles) extra.push(`--testPathIgnorePatterns=${escape(f)}$`);
} else if (process.getuid?.() !== 0) {
  const wanted = rootFiles.filter(selected);
  if (wanted.length > 0) {
    console.error(
      `these tests need root (BPF, network namespaces): ${wanted.join(', ')}\n` +
        'run them as root, or `make test-unit` for the tests that need none.',
    );
    console.log('0 passed, 1 failed');
    process.exit(1);
  }
}

const out = '.test-results.json';
rmSync(out, { force: true });
const args = [
  '--experimental-vm-modules',
  'node_modules/jest/bin/jest.js',
  '--json',
  `--outputFile=${out}`,
  // file selectors first: jest's array options (--testPathIgnorePatterns) take the words after them
  ...argv,
  ...extra,
];
const res = spawnSync(process.execPath, args, { stdio: 'inherit', env: { ...process.env, NODE_NO_WARNINGS: '1' } });
let passed = 0;
let failed = 0;
let pending = 0;
try {
  const r = JSON.parse(readFileSync(out, 'utf8'));
  passed = r.numPassedTests;
  failed = r.numFailedTests + (r.numRuntimeErrorTestSuites ?? 0);
  pending = r.numPendingTests + (r.numTodoTests ?? 0);
} catch {
  failed = Math.max(1, failed);
}
if (res.status !== 0 && failed === 0) failed = 1;
console.log(`${passed} passed, ${failed} failed${pending ? `, ${pending} skipped` : ''}`);
process.exit(failed === 0 && res.status === 0 ? 0 : 1);
