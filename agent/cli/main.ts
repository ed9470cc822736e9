/**
 * The `weir` command. Each subcommand lives in agent/cli/commands/<name>.ts and
 * exports `register(program)`; this file only wires them together.
 */
import { Command } from 'commander';
import { register as registerVersion } from './commands/version.js';
import { register as registerPolicy } from './commands/policy.js';
import { register as registerObserve } from './commands/observe.js';
import { register as registerLab } from './commands/lab.js';
import { register as registerAgent } from './commands/agent.js';
import { register as registerDatapath } from './commands/datapath.js';
import { register as registerRelay } from './commands/relay.js';

export function buildProgram(): Command {
  const program = new Command('weir')
    .description('Kubernetes NetworkPolicy dataplane on eBPF')
    .showHelpAfterError()
    .enablePositionalOptions();
  registerVersion(program);
  registerPolicy(program);
  registerObserve(program);
  registerLab(program);
  registerAgent(program);
  registerDatapath(program);
  registerRelay(program);
  return program;
}

const isMain = process.argv[1] !== undefined && /(?:^|\/)(main\.js|weir)$/.test(process.argv[1]);
if (isMain) {
  buildProgram()
    .parseAsync(process.argv)
    .catch((err: unknown) => {
      process.stderr.write(`error: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(1);
    });
}
