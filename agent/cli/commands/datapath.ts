/** `weir datapath show`: what the kernel enforces right now, read from the pinned maps. */
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';

/** Loaded by the preAction hook, only when a command runs: `--help` and the other commands need none of it. */
let deps: typeof import('./datapath-deps.js');

/** datapath/datapath.ts DEFAULT_PIN_ROOT, here so that help needs no import (test/flows/startup.test.ts checks both agree). */
export const DEFAULT_PIN_ROOT = '/sys/fs/bpf/weir';

export function register(program: Command): void {
  const dp = program
    .command('datapath')
    .description('inspect the eBPF datapath pinned on this machine (needs root)')
    .hook('preAction', async () => {
      deps = await import('./datapath-deps.js');
    });
  dp.command('show')
    .description('endpoints and their allow entries, verdict counters, lost events and (optionally) connections')
    .option(
      '--pin-root <dir>',
      'bpffs directory of the pinned maps (the lab uses /sys/fs/bpf/weir/lab)',
      DEFAULT_PIN_ROOT,
    )
    .option(
      '--connections <n>',
      'also list up to N conntrack entries',
      (v: string) => {
        const n = Number(v);
        if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('must be a whole number');
        return n;
      },
      0,
    )
    .option('-o, --output <format>', 'text or json', 'text')
    .action((opts: { pinRoot: string; connections: number; output: string }) => {
      const view = deps.inspectDatapath(opts.pinRoot, { connections: opts.connections });
      if (opts.output === 'json') {
        process.stdout.write(
          `${JSON.stringify(view, (_k, v: unknown) => (typeof v === 'bigint' ? Number(v) : v), 2)}\n`,
        );
      } else {
        process.stdout.write(`${deps.formatDatapath(view)}\n`);
      }
    });
}
