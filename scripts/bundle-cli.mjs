#!/usr/bin/env node
/**
 * The `weir` command's fast start (make build, after tsc): the compiled CLI bundled into one
 * CommonJS file, dist/cli/weir.cjs, with a V8 code cache beside it that bin/weir hands to V8.
 *
 * Start-up of a short command is mostly module loading: resolving, reading and compiling the
 * hundred-odd files of grpc-js, protobufjs and commander. One file needs no resolving, and a
 * code cache (Node 22 has module.enableCompileCache; Node 20 has only vm.Script's cachedData)
 * skips compiling what the commands ran when the cache was made.
 *
 * Only what the short commands use is bundled: `--help`, `version`, `observe` and
 * `policy explain`. Every other dynamic import (the agent, the relay, the lab, the datapath
 * commands, the Kubernetes client) stays an import of the compiled module in dist/ or of the
 * package, so those commands run exactly the code tsc wrote, with one copy of each library.
 *
 * The cache is made here by running those commands once (WEIR_CODE_CACHE=write) against a
 * flow API this script serves on a unix socket; it is named after a hash of the bundle, so a
 * cache never meets a bundle it was not made from.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import * as esbuild from 'esbuild';

const root = resolve(dirname(new URL(import.meta.url).pathname), '..');
const dist = join(root, 'dist');
const outDir = join(dist, 'cli');
const outFile = join(outDir, 'weir.cjs');

/** Dynamic imports that are bundled (importer, specifier): the short commands' own. */
const BUNDLED_DYNAMIC = new Set([
  'agent/cli/commands/observe.js ../../flows/client.js',
  'agent/cli/commands/observe.js ../../flows/socket.js',
  'agent/cli/commands/observe.js ../../flows/format.js',
  'agent/cli/commands/observe.js @grpc/grpc-js',
  'agent/cli/commands/policy.js ./explain.js',
]);

/** The specifiers left as dynamic imports; bin/weir imports them for the bundle (see below). */
const externals = new Set();

const lean = {
  name: 'weir-lean',
  setup(build) {
    build.onResolve({ filter: /.*/ }, (args) => {
      if (args.kind !== 'dynamic-import') return undefined;
      const importer = relative(dist, args.importer);
      if (BUNDLED_DYNAMIC.has(`${importer} ${args.path}`)) return undefined;
      // a package, or the compiled module itself as the bundle (in dist/cli) reaches it
      const path = args.path.startsWith('.')
        ? './' + relative(outDir, resolve(dirname(args.importer), args.path))
        : args.path;
      externals.add(path);
      return { path, external: true };
    });
    // import.meta.url of a bundled module: where tsc put it, wherever dist/ is installed
    build.onLoad({ filter: /\.js$/ }, (args) => {
      const src = readFileSync(args.path, 'utf8');
      if (!src.includes('import.meta.url')) return undefined;
      const rel = relative(outDir, args.path);
      return {
        contents: src.replaceAll('import.meta.url', `new URL(${JSON.stringify(rel)}, __weirBundleUrl).href`),
        loader: 'js',
      };
    });
  },
};

mkdirSync(outDir, { recursive: true });
// the old bundle stays in place until the new one replaces it whole (a weir started meanwhile runs either)
const stale = readdirSync(outDir).filter((f) => f.startsWith('weir.') && f.endsWith('.cache'));

const built = await esbuild.build({
  write: false,
  entryPoints: [join(dist, 'agent/cli/main.js')],
  outfile: outFile,
  bundle: true,
  format: 'cjs',
  platform: 'node',
  target: 'node20',
  minifySyntax: true,
  minifyWhitespace: true,
  legalComments: 'none',
  logLevel: 'warning',
  banner: { js: "const __weirBundleUrl = require('node:url').pathToFileURL(__filename).href;" },
  plugins: [lean],
});

// The bundle runs as a script (vm.Script, for its code cache), where import() has no loader
// behind it once the code comes from a cache: bin/weir passes its own import as __weirImport.
let code = built.outputFiles[0].text;
for (const path of externals)
  code = code.replaceAll(`import(${JSON.stringify(path)})`, `__weirImport(${JSON.stringify(path)})`);
const stray = /(^|[^\w$.])import\(/.exec(code);
if (stray) throw new Error(`the bundle still has a dynamic import at ${stray.index}: add it to the externals`);

// The bundle's id: bin/weir reads it from the first line and looks for weir.<id>.cache.
const id = createHash('sha256').update(code).digest('hex').slice(0, 16);
writeFileSync(`${outFile}.tmp`, `// weir-bundle ${id}\n${code}`);
renameSync(`${outFile}.tmp`, outFile);
for (const f of stale) if (f !== `weir.${id}.cache`) rmSync(join(outDir, f), { force: true });

// Make the code cache: each run loads the cache so far and writes it again with what it compiled.
const weir = join(root, 'bin/weir');
const env = { ...process.env, WEIR_CODE_CACHE: 'write' };
const run = (args) => {
  const r = spawnSync(process.execPath, [weir, ...args], { env, cwd: root, encoding: 'utf8' });
  if (r.status !== 0 && r.status !== 2) throw new Error(`weir ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
};
run(['--help']);
if (existsSync(join(root, 'test/fixtures/xyz')))
  run(['policy', 'explain', '--from', 'y/a', '--to', 'x/b', '--port', '80', '-f', 'test/fixtures/xyz']);
await warmObserve();
const cache = join(outDir, `weir.${id}.cache`);
if (!existsSync(cache)) throw new Error(`no code cache was written to ${cache}`);
process.stdout.write(
  `>> bundle ${relative(root, outFile)} (${code.length >> 10} KiB), code cache ${readFileSync(cache).length >> 10} KiB\n`,
);

/** `weir observe` against a flow API on a unix socket holding a few flows of every kind. */
async function warmObserve() {
  const mod = (p) => import(pathToFileURL(join(dist, p)).href);
  const fixtures = join(dist, 'test/flows/fixtures.js');
  if (!existsSync(fixtures)) return;
  const [{ Observer }, { startObserverServer }, { allowed, denied, makeContext }] = await Promise.all([
    mod('agent/flows/observer.js'),
    mod('agent/flows/server.js'),
    mod('test/flows/fixtures.js'),
  ]);
  const dir = mkdtempSync(join(tmpdir(), 'weir-bundle-'));
  const observer = new Observer({ nodeName: 'build', context: makeContext(), capacity: 100 });
  observer.ingest(Array.from({ length: 20 }, (_, i) => (i % 2 ? denied({ srcPort: 1000 + i }) : allowed())));
  const sock = join(dir, 'observer.sock');
  const server = await startObserverServer(observer, { socketPath: sock });
  try {
    // the server answers from this process: the client runs while this one waits
    await runAsync([weir, 'observe', '--server', sock, '--last', '10']);
  } finally {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

function runAsync(args) {
  return new Promise((res, rej) => {
    const c = spawn(process.execPath, args, { env, cwd: root, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    c.stderr.on('data', (d) => (err += d));
    c.on('error', rej);
    c.on('exit', (s) => (s === 0 ? res() : rej(new Error(`weir ${args.slice(1).join(' ')} exited ${s}: ${err}`))));
  });
}
