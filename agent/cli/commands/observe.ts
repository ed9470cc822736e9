/**
 * `weir observe`: what the datapath forwarded and dropped, and why, from the flow API of
 * the local lab or node agent.
 */
import { Command, Option } from 'commander';
import { ObserverClient } from '../../flows/client.js';
import {
  buildBlacklist,
  buildWhitelist,
  FlagError,
  FILTER_FLAGS,
  type FilterFlag,
  type FilterFlagValues,
} from '../../flows/cli-filters.js';
import { msToTimestamp } from '../../flows/clock.js';
import {
  formatCompact,
  formatJson,
  formatLost,
  formatTable,
  tableRow,
  OUTPUT_FORMATS,
  type OutputFormat,
} from '../../flows/format.js';
import { findObserverAddress } from '../../flows/socket.js';
import type { GetFlowsRequest, GetFlowsResponse, Timestamp } from '../../flows/types.js';

const DEFAULT_LAST = 20;

/** "30s", "5m", "2h", "1d" ago, or an RFC 3339 / ISO time. */
export function parseSince(s: string, now = Date.now()): Timestamp {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/.exec(s.trim());
  if (m) {
    const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as 'ms' | 's' | 'm' | 'h' | 'd'];
    return msToTimestamp(now - Number(m[1]) * unit);
  }
  const t = Date.parse(s);
  if (Number.isNaN(t))
    throw new FlagError(`--since: "${s}" is neither a duration (30s, 5m, 2h) nor a time (2026-01-02T15:04:05Z)`);
  return msToTimestamp(t);
}

interface ObserveOptions {
  server?: string;
  follow?: boolean;
  last?: string;
  first?: string;
  since?: string;
  until?: string;
  output: OutputFormat;
  color: 'auto' | 'always' | 'never';
  status?: boolean;
}

const collect = (v: string, prev: string[] = []) => [...prev, v];

/** flag name -> commander option (long name, argument, help). */
const FLAG_HELP: Record<FilterFlag, [string, string]> = {
  namespace: ['--namespace <ns>', 'flows from or to pods in this namespace'],
  fromNamespace: ['--from-namespace <ns>', 'flows from pods in this namespace'],
  toNamespace: ['--to-namespace <ns>', 'flows to pods in this namespace'],
  pod: ['--pod <[ns/]pod>', 'flows from or to this pod (name prefix)'],
  fromPod: ['--from-pod <[ns/]pod>', 'flows from this pod (name prefix)'],
  toPod: ['--to-pod <[ns/]pod>', 'flows to this pod (name prefix)'],
  label: ['--label <selector>', 'flows from or to endpoints matching this label selector (app=web,tier!=db)'],
  fromLabel: ['--from-label <selector>', 'flows from endpoints matching this label selector'],
  toLabel: ['--to-label <selector>', 'flows to endpoints matching this label selector'],
  ip: ['--ip <ip|cidr>', 'flows from or to this address or CIDR'],
  fromIp: ['--from-ip <ip|cidr>', 'flows from this address or CIDR'],
  toIp: ['--to-ip <ip|cidr>', 'flows to this address or CIDR'],
  identity: ['--identity <n>', 'flows from or to this security identity'],
  fromIdentity: ['--from-identity <n>', 'flows from this security identity'],
  toIdentity: ['--to-identity <n>', 'flows to this security identity'],
  port: ['--port <port>', 'flows from or to this L4 port'],
  fromPort: ['--from-port <port>', 'flows from this L4 port'],
  toPort: ['--to-port <port>', 'flows to this L4 port'],
  verdict: ['--verdict <verdict>', 'FORWARDED or DROPPED'],
  protocol: ['--protocol <proto>', 'tcp, udp, sctp, icmp, icmpv4 or icmpv6'],
  type: ['--type <type>', 'event type: policy-verdict or drop'],
  dropReason: ['--drop-reason <reason>', 'drop reason, e.g. POLICY_DENIED'],
  trafficDirection: ['--traffic-direction <dir>', 'ingress or egress (seen from the pod)'],
  ipVersion: ['--ip-version <v>', '4 or 6'],
};

export function register(program: Command): void {
  const cmd = program
    .command('observe')
    .description('show flows the datapath forwarded or dropped, with pods, identities, verdict and reason')
    .option(
      '--server <address>',
      "flow API: unix socket path or host:port (default: the lab's, else the local agent's)",
    )
    .option('-f, --follow', 'keep streaming new flows')
    .option('--last <n>', `the last N flows (default ${DEFAULT_LAST} without --follow or --since)`)
    .option('--first <n>', 'the first N flows still held')
    .option('--since <time>', 'flows since a duration ago (30s, 5m) or a time (RFC 3339)')
    .option('--until <time>', 'flows until a duration ago or a time')
    .addOption(new Option('-o, --output <format>', 'output format').choices([...OUTPUT_FORMATS]).default('compact'))
    .addOption(
      new Option('--color <when>', 'color the compact output').choices(['auto', 'always', 'never']).default('auto'),
    )
    .option('--status', 'print the flow API status (flows seen, capacity, lost events, uptime) and exit')
    .option('--not', 'exclude flows matching the filter flag that follows');

  for (const flag of FILTER_FLAGS) {
    const [spec, help] = FLAG_HELP[flag];
    cmd.option(spec, help, collect);
  }

  // --not applies to the next filter flag only: watch the flags in the order given.
  const negated: Array<{ flag: FilterFlag; value: string }> = [];
  const allowed: FilterFlagValues = {};
  let negateNext = false;
  cmd.on('option:not', () => {
    negateNext = true;
  });
  for (const flag of FILTER_FLAGS) {
    const long = FLAG_HELP[flag][0].split(' ')[0]!.slice(2);
    cmd.on(`option:${long}`, (value: string) => {
      if (negateNext) negated.push({ flag, value });
      else (allowed[flag] ??= []).push(value);
      negateNext = false;
    });
  }

  cmd.action(async (opts: ObserveOptions) => {
    const address = findObserverAddress(opts.server);
    const client = new ObserverClient(address);
    try {
      if (opts.status) {
        const s = await client.serverStatus().catch((e: Error & { details?: string }) => {
          throw new Error(unreachable(address, e.details ?? e.message));
        });
        process.stdout.write(
          opts.output === 'json'
            ? `${JSON.stringify(s)}\n`
            : `Flows: ${s.num_flows}/${s.max_flows} held, ${s.seen_flows} seen\n` +
                `Lost: ${s.lost_events} in the datapath ring buffer, ${s.client_dropped_flows} for slow clients\n` +
                `Clients: ${s.connected_clients} following\nUptime: ${(s.uptime_ns / 1e9).toFixed(0)}s\nVersion: ${s.version}\n`,
        );
        return;
      }
      const req = buildRequest(opts, allowed, negated);
      await stream(client, address, req, opts);
    } finally {
      client.close();
    }
  });
}

export function buildRequest(
  opts: Pick<ObserveOptions, 'follow' | 'last' | 'first' | 'since' | 'until'>,
  allowed: FilterFlagValues,
  negated: Array<{ flag: FilterFlag; value: string }>,
): GetFlowsRequest {
  const count = (flag: string, v: string) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0) throw new FlagError(`${flag}: "${v}" is not a number of flows`);
    return n;
  };
  if (opts.first && opts.follow)
    throw new FlagError('--first and --follow exclude each other: use --last with --follow');
  const req: GetFlowsRequest = {
    follow: Boolean(opts.follow),
    whitelist: buildWhitelist(allowed),
    blacklist: buildBlacklist(negated),
  };
  if (opts.since) req.since = parseSince(opts.since);
  if (opts.until) req.until = parseSince(opts.until);
  if (opts.first) {
    req.first = true;
    req.number = count('--first', opts.first);
  } else if (opts.last) req.number = count('--last', opts.last);
  else if (!opts.follow && !opts.since) req.number = DEFAULT_LAST;
  return req;
}

/** "connect ECONNREFUSED /path" out of grpc's long UNAVAILABLE text, and what to do. */
export function unreachable(address: string, details: string): string {
  const cause = /Error: (.+?)(?:\. Resolution note:|\.?\s*$)/.exec(details)?.[1] ?? details;
  return `cannot reach the flow API at ${address} (${cause}): is the lab or the agent running? (weir lab up, or --server ADDRESS)`;
}

function stream(client: ObserverClient, address: string, req: GetFlowsRequest, opts: ObserveOptions): Promise<void> {
  const color = opts.color === 'always' || (opts.color === 'auto' && process.stdout.isTTY === true);
  const rows: string[][] = [];
  return new Promise((resolve, reject) => {
    const call = client.getFlows(req);
    // When whatever reads our output is slower than the flows, stop reading the stream
    // until it catches up: the agent then drops (and counts) flows for this client
    // instead of this process buffering them without bound.
    const out = (line: string) => {
      if (!process.stdout.write(`${line}\n`)) {
        call.pause();
        process.stdout.once('drain', () => call.resume());
      }
    };
    const stop = () => call.cancel();
    process.once('SIGINT', stop);
    call.on('data', (r: GetFlowsResponse) => {
      if (opts.output === 'json') return out(formatJson(r));
      if (r.lost_events) return process.stderr.write(`${formatLost(r)}\n`);
      if (!r.flow) return;
      if (opts.output === 'table') {
        if (opts.follow) out(tableRow(r.flow).join('  '));
        else rows.push(tableRow(r.flow));
      } else out(formatCompact(r.flow, { color }));
    });
    call.on('error', (e: Error & { code?: number; details?: string }) => {
      process.off('SIGINT', stop);
      if (e.code === 1) return resolve(); // cancelled by Ctrl-C
      reject(new Error(e.code === 14 ? unreachable(address, e.details ?? e.message) : (e.details ?? e.message)));
    });
    call.on('end', () => {
      process.off('SIGINT', stop);
      if (opts.output === 'table') out(formatTable(rows));
      resolve();
    });
  });
}
