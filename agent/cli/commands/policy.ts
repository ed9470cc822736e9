/**
 * `weir policy explain`: the verdict for one connection, or the truth table of every pod
 * pair, computed offline from Namespace/Pod/NetworkPolicy manifests by the same compiler
 * the agent runs.
 */
import type { Command } from 'commander';
import { InvalidArgumentError, Option } from 'commander';
import type { L4Protocol } from '../../desired.js';

import type { ExplainOptions } from './explain.js';

/** A port number, or a port name as Kubernetes allows them (IANA service name: a-z, 0-9, '-', at most 15). */
function parsePort(v: string): number | string {
  if (/^[0-9]+$/.test(v)) {
    const n = Number(v);
    if (n < 1 || n > 65535) throw new InvalidArgumentError('must be a port number 1-65535 or a port name');
    return n;
  }
  if (!/^[a-z0-9]([a-z0-9-]{0,13}[a-z0-9])?$/.test(v) || !/[a-z]/.test(v))
    throw new InvalidArgumentError('must be a port number 1-65535 or a container port name (e.g. http)');
  return v;
}

function parseProtocol(v: string): L4Protocol {
  const p = v.toUpperCase();
  if (p !== 'TCP' && p !== 'UDP' && p !== 'SCTP') throw new InvalidArgumentError('must be TCP, UDP or SCTP');
  return p;
}

export function register(program: Command): void {
  const policy = program.command('policy').description('inspect NetworkPolicies the way weir compiles them');
  policy
    .command('explain')
    .description('explain whether a connection between two pods is allowed and why (offline, from manifests)')
    .option('--from <[ns/]pod|ip>', 'source: a pod as [NAMESPACE/]NAME, or an IP address outside the pods')
    .option('--to <[ns/]pod|ip>', 'destination: a pod as [NAMESPACE/]NAME, or an IP address outside the pods')
    .option(
      '--to-service <[ns/]name>',
      "destination: a Service of the manifests; --port is its port (number or name), and each backend's verdict is explained",
    )
    .option('-n, --namespace <ns>', 'namespace of --from/--to pods given without one (default "default")')
    .requiredOption(
      '--port <port>',
      "destination port: a number, or a container port name of the --to pod (e.g. http), as a policy's named port",
      parsePort,
    )
    .addOption(new Option('--protocol <proto>', 'TCP, UDP or SCTP').default('TCP').argParser(parseProtocol))
    .requiredOption(
      '-f, --filename <paths...>',
      'manifest files or directories, or - for standard input (Namespaces, Pods, NetworkPolicies; multi-document YAML and kind: List)',
    )
    .option('--matrix', 'print the truth table of every pod pair instead of one connection')
    .option('--pod-cidr <cidrs...>', 'pod network prefixes (warns about ipBlocks that cover them)')
    .addOption(new Option('-o, --output <format>', 'text or json').choices(['text', 'json']).default('text'))
    .addHelpText(
      'after',
      '\nExit status: 0 allowed (or --matrix printed; with --to-service: every backend allowed), 2 denied, 1 error.',
    )
    .action(async (opts: ExplainOptions) => {
      // Loaded here, not at start-up: `weir --help` and the other commands need none of it.
      const { runExplain } = await import('./explain.js');
      const code = runExplain(
        opts,
        (s) => process.stdout.write(s),
        (s) => process.stderr.write(s),
      );
      process.exitCode = code;
    });
}
