/**
 * `weir observe`: what the datapath forwarded and dropped, and why, from the flow API of
 * the local lab or node agent.
 */
import { Command, Option } from 'commander';
import {
  buildBlacklist,
  buildWhitelist,
  FlagError,
  FILTER_FLAGS,
  type FilterFlag,
  type FilterFlagValues,
} from '../../flows/cli-filters.js';
import { msToTimestamp } from '../../flows/clock.js';
import type { ObserverClient } from '../../flows/client.js';
import type { OutputFormat, TimeFormat } from '../../flows/format.js';
import type { FlowFilter, GetFlowsRequest, GetFlowsResponse, Timestamp } from '../../flows/types.js';

/** Output formats and time formats, as Hubble names them (agent/flows/format.ts implements them). */
export const OUTPUT_FORMATS: readonly OutputFormat[] = ['compact', 'dict', 'json', 'jsonpb', 'table'];
export const TIME_FORMATS: readonly TimeFormat[] = [
  'StampMilli',
  'RFC3339',
  'RFC3339Milli',
  'RFC3339Micro',
  'RFC3339Nano',
  'RFC1123Z',
];

const DEFAULT_LAST = 20;

const DURATION_UNITS_MS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  µs: 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

/** A Go-style duration ("30s", "5m", "1h43m", "1.5h", "2d") in milliseconds; undefined when it is none. */
export function parseDuration(s: string): number | undefined {
  const t = s.trim();
  if (!/^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h|d))+$/.test(t)) return undefined;
  let ms = 0;
  for (const m of t.matchAll(/(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h|d)/g)) ms += Number(m[1]) * DURATION_UNITS_MS[m[2]!]!;
  return ms;
}

/** A duration ago ("30s", "5m", "1h43m") or an RFC 3339 / ISO time. */
export function parseSince(s: string, now = Date.now()): Timestamp {
  const d = parseDuration(s);
  if (d !== undefined) return msToTimestamp(now - d);
  const t = Date.parse(s);
  if (Number.isNaN(t))
    throw new FlagError(`--since: "${s}" is neither a duration (30s, 5m, 2h) nor a time (2026-01-02T15:04:05Z)`);
  return msToTimestamp(t);
}

interface ObserveOptions {
  server?: string;
  tls?: boolean;
  tlsCaCertFiles?: string[];
  tlsClientCertFile?: string;
  tlsClientKeyFile?: string;
  tlsServerName?: string;
  follow?: boolean;
  last?: string;
  first?: string;
  all?: boolean;
  since?: string;
  until?: string;
  output: OutputFormat;
  color: 'auto' | 'always' | 'never';
  timeFormat: TimeFormat;
  printNodeName?: boolean;
  printRawFilters?: boolean;
  status?: boolean;
}

const collect = (v: string, prev: string[] = []) => [...prev, v];

/** flag name -> commander option (long name, argument, help). */
const FLAG_HELP: Record<FilterFlag, [string, string]> = {
  namespace: ['-n, --namespace <ns>', 'flows from or to pods in this namespace'],
  fromNamespace: ['--from-namespace <ns>', 'flows from pods in this namespace'],
  toNamespace: ['--to-namespace <ns>', 'flows to pods in this namespace'],
  pod: ['--pod <[ns/]pod>', 'flows from or to this pod (name prefix; namespace "default" when not given)'],
  fromPod: ['--from-pod <[ns/]pod>', 'flows from this pod (name prefix; namespace "default" when not given)'],
  toPod: ['--to-pod <[ns/]pod>', 'flows to this pod (name prefix; namespace "default" when not given)'],
  label: ['-l, --label <selector>', 'flows from or to endpoints matching this label selector (app=web,tier!=db)'],
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
  type: ['-t, --type <type>', 'event type: policy-verdict or drop'],
  dropReason: ['--drop-reason-desc <reason>', 'drop reason, e.g. POLICY_DENIED (also --drop-reason)'],
  trafficDirection: ['--traffic-direction <dir>', 'ingress or egress (seen from the pod)'],
  ipVersion: ['--ip-version <v>', 'v4 or v6 (also -4, -6)'],
  nodeName: ['--node-name <pattern>', 'flows seen on nodes matching this name pattern ("worker-*")'],
  tcpFlags: ['--tcp-flags <flags>', 'TCP flows with all these flags set, e.g. SYN or SYN,ACK'],
  interface: ['--interface <name>', "flows seen on this network interface (a pod's host-side veth)"],
  toService: ['--to-service <ns/name>', 'flows to this Service (its ClusterIP or NodePort), translated to a backend'],
};

/** The long option name of a filter flag ("from-pod"). */
const longName = (flag: FilterFlag) => /--([\w-]+)/.exec(FLAG_HELP[flag][0])![1]!;

export function register(program: Command): void {
  const cmd = program
    .command('observe')
    .description('show flows the datapath forwarded or dropped, with pods, identities, verdict and reason')
    .option(
      '--server <address>',
      "flow API: unix socket path or host:port (default: the lab's, else the local agent's)",
    )
    .option('--tls', 'connect to --server with TLS (a relay or an agent listening on TCP)')
    .option('--tls-ca-cert-files <files...>', "CA certificates (PEM) the server's certificate must chain to")
    .option('--tls-client-cert-file <file>', 'client certificate (PEM), for mutual TLS')
    .option('--tls-client-key-file <file>', 'client key (PEM), for mutual TLS')
    .option('--tls-server-name <name>', "the name the server's certificate carries, when not the address")
    .option('-f, --follow', 'keep streaming new flows')
    .option('--last <n>', `the last N flows (default ${DEFAULT_LAST} without --follow or --since)`)
    .option('--first <n>', 'the first N flows still held')
    .option('--all', 'every flow still held')
    .option('--since <time>', 'flows since a duration ago (30s, 5m, 1h43m) or a time (RFC 3339)')
    .option('--until <time>', 'flows until a duration ago or a time')
    .addOption(
      new Option(
        '-o, --output <format>',
        'compact, dict, json (each flow), jsonpb (each response, as Hubble) or table (a header when following)',
      )
        .choices([...OUTPUT_FORMATS])
        .default('compact'),
    )
    .addOption(
      new Option('--time-format <format>', 'how times are printed').choices([...TIME_FORMATS]).default('StampMilli'),
    )
    .option('--print-node-name', 'print the node each flow was seen on')
    .option('--print-raw-filters', 'print the filters this command would send, and exit')
    .addOption(
      new Option('--color <when>', 'color the compact output').choices(['auto', 'always', 'never']).default('auto'),
    )
    .option('--status', 'print the flow API status (flows seen, capacity, lost events, uptime) and exit')
    .option('--not', 'exclude flows matching the filter flag that follows')
    .option('-4, --ipv4', 'IPv4 flows only (same as --ip-version v4)')
    .option('-6, --ipv6', 'IPv6 flows only (same as --ip-version v6)')
    .addOption(new Option('--drop-reason <reason>', 'the same as --drop-reason-desc').hideHelp())
    .addHelpText(
      'after',
      '\nFlags of different kinds must all match; a repeated flag is a list of alternatives; --not excludes\n' +
        'what the next filter flag selects. A pod given without a namespace is in "default" (as in Hubble):\n' +
        '--pod web-0 means default/web-0; use NAMESPACE/POD or -n NAMESPACE for others.',
    );

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
  const take = (flag: FilterFlag, value: string) => {
    if (negateNext) negated.push({ flag, value });
    else (allowed[flag] ??= []).push(value);
    negateNext = false;
  };
  for (const flag of FILTER_FLAGS) cmd.on(`option:${longName(flag)}`, (value: string) => take(flag, value));
  cmd.on('option:drop-reason', (value: string) => take('dropReason', value));
  cmd.on('option:ipv4', () => take('ipVersion', 'v4'));
  cmd.on('option:ipv6', () => take('ipVersion', 'v6'));

  cmd.action(async (opts: ObserveOptions) => {
    if (opts.printRawFilters) {
      const req = buildRequest(opts, allowed, negated);
      process.stdout.write(formatRawFilters(req));
      return;
    }
    // Loaded only now: `weir --help` and the other commands need no gRPC.
    const { ObserverClient } = await import('../../flows/client.js');
    const { findObserverAddress } = await import('../../flows/socket.js');
    const address = findObserverAddress(opts.server);
    const client = opts.tls || opts.tlsCaCertFiles ? await tlsClient(address, opts) : new ObserverClient(address);
    try {
      if (opts.status) {
        const s = await client.serverStatus().catch((e: Error & { details?: string }) => {
          throw new Error(unreachable(address, e.details ?? e.message));
        });
        process.stdout.write(
          opts.output === 'json' || opts.output === 'jsonpb'
            ? `${JSON.stringify(s)}\n`
            : `Flows: ${s.num_flows}/${s.max_flows} held, ${s.seen_flows} seen\n` +
                `Lost: ${s.lost_events} in the datapath ring buffer, ${s.client_dropped_flows} for slow clients\n` +
                `Clients: ${s.connected_clients} following\nUptime: ${(s.uptime_ns / 1e9).toFixed(0)}s\nVersion: ${s.version}\n` +
                (s.num_connected_nodes
                  ? `Nodes: ${s.num_connected_nodes.value} connected, ${s.num_unavailable_nodes?.value ?? 0} unavailable` +
                    `${s.unavailable_nodes?.length ? ` (${s.unavailable_nodes.join(', ')})` : ''}\n`
                  : ''),
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

async function tlsClient(address: string, o: ObserveOptions): Promise<ObserverClient> {
  const grpc = await import('@grpc/grpc-js');
  const { readFileSync } = await import('node:fs');
  const { ObserverClient } = await import('../../flows/client.js');
  const ca = o.tlsCaCertFiles?.length ? Buffer.concat(o.tlsCaCertFiles.map((f) => readFileSync(f))) : null;
  const key = o.tlsClientKeyFile ? readFileSync(o.tlsClientKeyFile) : null;
  const cert = o.tlsClientCertFile ? readFileSync(o.tlsClientCertFile) : null;
  return new ObserverClient(
    address,
    grpc.credentials.createSsl(ca, key, cert),
    o.tlsServerName
      ? { 'grpc.ssl_target_name_override': o.tlsServerName, 'grpc.default_authority': o.tlsServerName }
      : {},
  );
}

/** The filters of a request as Hubble's --print-raw-filters shows them: one JSON filter per line. */
export function formatRawFilters(req: GetFlowsRequest): string {
  const list = (name: string, fs: FlowFilter[] = []) =>
    fs.length === 0 ? `${name}: []\n` : `${name}:\n${fs.map((f) => `    - '${JSON.stringify(f)}'\n`).join('')}`;
  return list('allowlist', req.whitelist) + list('denylist', req.blacklist);
}

/** "Show everything held": more than any ring holds. */
const ALL_FLOWS = Number.MAX_SAFE_INTEGER;

export function buildRequest(
  opts: Pick<ObserveOptions, 'follow' | 'last' | 'first' | 'since' | 'until' | 'all'>,
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
  if ([opts.first, opts.last, opts.all].filter(Boolean).length > 1)
    throw new FlagError('--first, --last and --all exclude each other');
  if (opts.first) {
    req.first = true;
    req.number = count('--first', opts.first);
  } else if (opts.last) req.number = count('--last', opts.last);
  else if (opts.all) req.number = ALL_FLOWS;
  else if (!opts.follow && !opts.since) req.number = DEFAULT_LAST;
  return req;
}

/** "connect ECONNREFUSED /path" out of grpc's long UNAVAILABLE text, and what to do. */
export function unreachable(address: string, details: string): string {
  const cause = /Error: (.+?)(?:\. Resolution note:|\.?\s*$)/.exec(details)?.[1] ?? details;
  return `cannot reach the flow API at ${address} (${cause}): is the lab or the agent running? (weir lab up, or --server ADDRESS)`;
}

async function stream(
  client: ObserverClient,
  address: string,
  req: GetFlowsRequest,
  opts: ObserveOptions,
): Promise<void> {
  const f = await import('../../flows/format.js');
  const color = opts.color === 'always' || (opts.color === 'auto' && process.stdout.isTTY === true);
  const printOpts = { color, timeFormat: opts.timeFormat, nodeName: Boolean(opts.printNodeName) };
  const rows: string[][] = [];
  const header = f.tableHeader(printOpts);
  let dictFirst = true;
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
    if (opts.output === 'table' && opts.follow) out(header.join('  '));
    const stop = () => call.cancel();
    process.once('SIGINT', stop);
    call.on('data', (r: GetFlowsResponse) => {
      if (opts.output === 'jsonpb') return out(f.formatJsonpb(r));
      if (r.lost_events) return process.stderr.write(`${f.formatLost(r)}\n`);
      if (r.node_status) return process.stderr.write(`${f.formatNodeStatus(r)}\n`);
      if (!r.flow) return;
      switch (opts.output) {
        case 'json':
          return out(f.formatJson(r.flow));
        case 'dict':
          out(f.formatDict(r.flow, printOpts, dictFirst));
          dictFirst = false;
          return;
        case 'table':
          if (opts.follow) return out(f.tableRow(r.flow, printOpts).join('  '));
          rows.push(f.tableRow(r.flow, printOpts));
          return;
        default:
          return out(f.formatCompact(r.flow, printOpts));
      }
    });
    call.on('error', (e: Error & { code?: number; details?: string }) => {
      process.off('SIGINT', stop);
      if (e.code === 1) return resolve(); // cancelled by Ctrl-C
      reject(new Error(e.code === 14 ? unreachable(address, e.details ?? e.message) : (e.details ?? e.message)));
    });
    call.on('end', () => {
      process.off('SIGINT', stop);
      if (opts.output === 'table') out(f.formatTable(rows, header));
      resolve();
    });
  });
}
