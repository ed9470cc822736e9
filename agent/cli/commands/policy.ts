/**
 * `weir policy explain`: the verdict for one connection, or the truth table of every pod
 * pair, computed offline from Namespace/Pod/NetworkPolicy manifests by the same compiler
 * the agent runs.
 */
import type { Command } from 'commander';
import { InvalidArgumentError, Option } from 'commander';
import type { L4Protocol } from '../../desired.js';
import { PolicyEngine } from '../../policy/engine.js';
import { explain, formatExplanation } from '../../policy/explain.js';
import { formatProblem } from '../../policy/compiled.js';
import { formatTruthTable, policyMatrix } from '../../policy/matrix.js';
import { loadManifests } from '../../store/manifests.js';

interface ExplainOptions {
  from?: string;
  to?: string;
  port: number;
  protocol: L4Protocol;
  filename: string[];
  matrix?: boolean;
  output: 'text' | 'json';
  podCidr?: string[];
}

function parsePort(v: string): number {
  const n = Number(v);
  if (!/^[0-9]+$/.test(v) || n < 1 || n > 65535) throw new InvalidArgumentError('must be a port number 1-65535');
  return n;
}

function parseProtocol(v: string): L4Protocol {
  const p = v.toUpperCase();
  if (p !== 'TCP' && p !== 'UDP' && p !== 'SCTP') throw new InvalidArgumentError('must be TCP, UDP or SCTP');
  return p;
}

export function runExplain(opts: ExplainOptions, out: (s: string) => void, err: (s: string) => void): number {
  const engine = new PolicyEngine(opts.podCidr ? { clusterPodCIDRs: opts.podCidr } : {});
  engine.upsertAll(loadManifests(opts.filename));
  for (const p of engine.errors()) err(`error: ${formatProblem(p)}\n`);
  for (const p of engine.warnings()) err(`warning: ${formatProblem(p)}\n`);
  if (opts.matrix) {
    const m = policyMatrix(engine, opts.port, opts.protocol);
    out(opts.output === 'json' ? `${JSON.stringify(m, null, 2)}\n` : `${formatTruthTable(m)}\n`);
    return 0;
  }
  if (!opts.from || !opts.to)
    throw new InvalidArgumentError('--from NS/POD and --to NS/POD are required (or use --matrix for every pair)');
  const e = explain(engine, { from: opts.from, to: opts.to, port: opts.port, protocol: opts.protocol });
  out(opts.output === 'json' ? `${JSON.stringify(e, null, 2)}\n` : `${formatExplanation(e)}\n`);
  return e.allowed ? 0 : 2;
}

export function register(program: Command): void {
  const policy = program.command('policy').description('inspect NetworkPolicies the way weir compiles them');
  policy
    .command('explain')
    .description('explain whether a connection between two pods is allowed and why (offline, from manifests)')
    .option('--from <ns/pod|ip>', 'source: a pod as NAMESPACE/NAME, or an IP address outside the pods')
    .option('--to <ns/pod|ip>', 'destination: a pod as NAMESPACE/NAME, or an IP address outside the pods')
    .requiredOption('--port <port>', 'destination port', parsePort)
    .addOption(new Option('--protocol <proto>', 'TCP, UDP or SCTP').default('TCP').argParser(parseProtocol))
    .requiredOption(
      '-f, --filename <paths...>',
      'manifest files or directories (Namespaces, Pods, NetworkPolicies; multi-document YAML and kind: List)',
    )
    .option('--matrix', 'print the truth table of every pod pair instead of one connection')
    .option('--pod-cidr <cidrs...>', 'pod network prefixes (warns about ipBlocks that cover them)')
    .addOption(new Option('-o, --output <format>', 'text or json').choices(['text', 'json']).default('text'))
    .addHelpText('after', '\nExit status: 0 allowed (or --matrix printed), 2 denied, 1 error.')
    .action((opts: ExplainOptions) => {
      const code = runExplain(
        opts,
        (s) => process.stdout.write(s),
        (s) => process.stderr.write(s),
      );
      process.exitCode = code;
    });
}
