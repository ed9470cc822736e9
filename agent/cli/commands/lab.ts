/**
 * `weir lab`: a local cluster of pods in network namespaces, enforced by the eBPF datapath.
 *
 *   weir lab up --cluster FILE        pods from Namespace/Pod YAML, the agent in the background
 *   weir lab apply -f FILE...         create or update NetworkPolicies, Namespaces, Pods
 *   weir lab delete -f FILE...        delete them
 *   weir lab get pods|policies|identities|services [-o json]
 *   weir lab probe [--port] [--protocol] [--from] [--to] [--via pod|service] [-o table|json]
 *   weir lab probe --to-service NS/NAME --port P   through a Service's ClusterIP
 *   weir lab restart-agent            kill the lab agent; a new one adopts the pinned datapath
 *   weir lab down                     remove everything the lab made (and nothing else)
 */
import { parseMapMax } from '../../datapath/map-max.js';
import { Command, Option } from 'commander';
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { LabConfig } from '../../lab/config.js';
import type { LabDaemonOptions } from '../../lab/runtime.js';
import type { LabStatus } from '../../lab/service.js';
import type { SourceReport } from '../../sources/lab.js';
import type { IdentityView, PodView, PolicyView, ServiceView } from '../../lab/views.js';
import type { L4Protocol } from '../../desired.js';

/** Loaded by the preAction hook, only when a command runs: `--help` and the other commands need none of it. */
let deps: typeof import('./lab-deps.js');

/** lab/probe.ts DEFAULT_PROBE_TIMEOUT_MS, here so that help needs no import (test/flows/startup.test.ts checks both agree). */
export const DEFAULT_PROBE_TIMEOUT_MS = 1000;

const MAIN = fileURLToPath(new URL('../main.js', import.meta.url));
const DAEMON_START_MS = 30_000;

interface ConfigFlags {
  prefix?: string;
  cidr4?: string;
  cidr6?: string;
  svcCidr4?: string;
  svcCidr6?: string;
  pinRoot?: string;
  runDir?: string;
}

function withLabOptions(cmd: Command): Command {
  return cmd
    .option('--prefix <p>', "prefix of the lab's network namespaces and veths (env WEIR_LAB_PREFIX, default weir-)")
    .option('--cidr4 <cidr>', 'IPv4 pod range (env WEIR_LAB_CIDR4, default 10.88.0.0/16)')
    .option('--cidr6 <cidr>', 'IPv6 pod range (env WEIR_LAB_CIDR6, default fd00:88::/64)')
    .option('--svc-cidr4 <cidr>', 'IPv4 Service range for ClusterIPs (env WEIR_LAB_SVC_CIDR4, default 10.96.0.0/16)')
    .option('--svc-cidr6 <cidr>', 'IPv6 Service range for ClusterIPs (env WEIR_LAB_SVC_CIDR6, default fd00:96::/112)')
    .option(
      '--pin-root <dir>',
      'bpffs directory for pinned programs and maps (env WEIR_LAB_PIN_ROOT, default /sys/fs/bpf/weir/lab)',
    )
    .option('--run-dir <dir>', 'runtime files: state, sockets, logs (env WEIR_LAB_RUN_DIR, default /run/weir/lab)');
}

function configFrom(opts: ConfigFlags): LabConfig {
  return deps.resolveLabConfig({
    ...(opts.prefix ? { prefix: opts.prefix } : {}),
    ...(opts.cidr4 ? { cidr4: opts.cidr4 } : {}),
    ...(opts.cidr6 ? { cidr6: opts.cidr6 } : {}),
    ...(opts.svcCidr4 ? { svcCidr4: opts.svcCidr4 } : {}),
    ...(opts.svcCidr6 ? { svcCidr6: opts.svcCidr6 } : {}),
    ...(opts.pinRoot ? { pinRoot: opts.pinRoot } : {}),
    ...(opts.runDir ? { runDir: opts.runDir } : {}),
  });
}

function out(s: string): void {
  process.stdout.write(s.endsWith('\n') ? s : `${s}\n`);
}

function say(s: string): void {
  process.stderr.write(`${s}\n`);
}

function requireRoot(): void {
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    throw new Error('the lab creates network namespaces and loads BPF programs: run it as root (sudo weir lab ...)');
  }
}

async function daemonStatus(c: LabConfig): Promise<LabStatus | undefined> {
  if (!existsSync(deps.controlSocketPath(c))) return undefined;
  try {
    return await deps.callControl<LabStatus>(deps.controlSocketPath(c), 'GET', '/status', undefined, undefined, 3000);
  } catch {
    return undefined;
  }
}

/**
 * Exit status of apply as kubectl gives it: 1 when an object was refused (the valid ones are
 * applied all the same); with --strict also when weir accepted something it cannot enforce as
 * written (a warning).
 */
function applyExitCode(refused: string[], r: SourceReport, strict: boolean): number {
  if (refused.length > 0 || r.refused.length > 0) return 1;
  return strict && r.warnings.length > 0 ? 1 : 0;
}

function printRefused(refused: string[]): void {
  for (const x of refused) say(`error: ${x}`);
}

function printReport(r: SourceReport, verb: string): void {
  printRefused(r.refused ?? []);
  for (const x of r.created) out(`${x} created`);
  for (const x of r.configured) out(`${x} configured`);
  for (const x of r.deleted) out(`${x} deleted`);
  for (const x of r.unchanged) out(`${x} ${verb === 'delete' ? 'not found' : 'unchanged'}`);
  for (const w of r.warnings) say(`warning: ${w}`);
  out(
    `realized in the datapath in ${r.realizedMs} ms (revision ${r.revision}, ${r.changes} change${r.changes === 1 ? '' : 's'}, compile ${r.compileMs} ms)`,
  );
}

function tailLog(path: string, lines = 15): string {
  try {
    return readFileSync(path, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

function daemonArgs(o: LabDaemonOptions, adopt: boolean): string[] {
  return [
    ...(o.enforce ? [] : ['--no-enforce']),
    ...(o.metricsPort !== undefined ? ['--metrics-port', String(o.metricsPort)] : []),
    ...(o.podMetrics ? ['--pod-metrics'] : []),
    ...(o.podMetricsMaxPods !== undefined ? ['--pod-metrics-max-pods', String(o.podMetricsMaxPods)] : []),
    ...Object.entries(o.mapMax ?? {}).flatMap(([m, n]) => ['--map-max', `${m}=${n}`]),
    ...(o.resyncIntervalMs !== undefined ? ['--resync-interval', String(o.resyncIntervalMs)] : []),
    ...(adopt ? ['--adopt'] : []),
  ];
}

async function startDaemon(c: LabConfig, options: LabDaemonOptions, adopt = false): Promise<LabStatus> {
  mkdirSync(c.runDir, { recursive: true });
  const logPath = join(c.runDir, 'agent.log');
  const log = openSync(logPath, 'a');
  const env = {
    ...process.env,
    WEIR_LAB_PREFIX: c.prefix,
    WEIR_LAB_CIDR4: c.cidr4,
    WEIR_LAB_CIDR6: c.cidr6,
    WEIR_LAB_SVC_CIDR4: c.svcCidr4,
    WEIR_LAB_SVC_CIDR6: c.svcCidr6,
    WEIR_LAB_PIN_ROOT: c.pinRoot,
    WEIR_LAB_RUN_DIR: c.runDir,
    WEIR_LAB_NODE: c.nodeName,
  };
  const args = [...LAB_AGENT_V8_FLAGS, MAIN, 'lab', 'serve', '--run-dir', c.runDir, ...daemonArgs(options, adopt)];
  const child = spawn(process.execPath, args, {
    detached: true,
    stdio: ['ignore', log, log],
    env,
  });
  closeSync(log);
  child.unref();
  let exited: number | null | undefined;
  child.on('exit', (code) => {
    exited = code;
  });
  const end = Date.now() + DAEMON_START_MS;
  while (Date.now() < end) {
    if (exited !== undefined)
      throw new Error(`the lab agent exited (code ${exited}) while starting:\n${tailLog(logPath)}`);
    const st = await daemonStatus(c);
    if (st) return st;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(
    `the lab agent did not answer within ${DAEMON_START_MS / 1000} s; see ${logPath}:\n${tailLog(logPath)}`,
  );
}

async function waitForExit(pid: number, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    try {
      process.kill(pid, 0);
    } catch {
      return;
    }
    await new Promise((r) => setTimeout(r, 25));
  }
}

function parseNumber(v: string, what: string, min: number, max: number): number {
  if (!/^\d+$/.test(v) || Number(v) < min || Number(v) > max)
    throw new Error(`${what} must be a number from ${min} to ${max}, got ${v}`);
  return Number(v);
}

interface DaemonFlags {
  enforce: boolean;
  metricsPort?: string;
  podMetrics?: boolean;
  podMetricsMaxPods?: string;
  mapMax?: string[];
  resyncInterval?: string;
}

/**
 * The lab's flow-event ring: a quarter of the node agent's (WEIR_EVENTS_RING_BYTES, 4 MiB), room
 * for about 10,000 events between two reads, plenty for a lab's few pods. The kernel maps a ring
 * into its reader twice (for wrap-around), all of it at once, so each MiB of ring is 2 MiB of the
 * lab agent's RSS. `--map-max weir_events=N` sets another size.
 */
export const LAB_EVENTS_RING_BYTES = 1 << 20;

/** V8 flags of the lab agent: a 1 MiB young generation (the default 16 MiB is RSS a lab never needs). */
export const LAB_AGENT_V8_FLAGS = ['--max-semi-space-size=1'];

function daemonOptions(o: DaemonFlags): LabDaemonOptions {
  const metricsPort = deps.requestedMetricsPort(
    o.metricsPort !== undefined ? parseNumber(o.metricsPort, '--metrics-port', 0, 65535) : undefined,
  );
  return {
    enforce: o.enforce,
    ...(metricsPort !== undefined ? { metricsPort } : {}),
    ...(o.podMetrics ? { podMetrics: true } : {}),
    ...(o.podMetricsMaxPods !== undefined
      ? { podMetricsMaxPods: parseNumber(o.podMetricsMaxPods, '--pod-metrics-max-pods', 1, 1_000_000) }
      : {}),
    mapMax: { weir_events: LAB_EVENTS_RING_BYTES, ...parseMapMax(o.mapMax) },
    ...(o.resyncInterval !== undefined
      ? { resyncIntervalMs: parseNumber(o.resyncInterval, '--resync-interval', 1, 86_400_000) }
      : {}),
  };
}

function withDaemonOptions(cmd: Command): Command {
  return cmd
    .option('--no-enforce', 'run the pods without the eBPF datapath')
    .option(
      '--metrics-port <port>',
      '/metrics port on 127.0.0.1, 0 for any free one (env WEIR_LAB_METRICS_PORT; default 9962, or a free port when 9962 is taken)',
    )
    .option('--pod-metrics', 'per-pod flow metrics (weir_pod_flows_total by source and destination pod)')
    .option('--pod-metrics-max-pods <n>', 'pods named in per-pod metrics; the rest count as "other" (default 100)')
    .option(
      '--map-max <map=n...>',
      'size a BPF map at load, e.g. weir_policy=64 (repeatable): a full map is then cheap to reach in a test',
    )
    .option('--resync-interval <ms>', 'how often the agent dumps the maps and repairs drift (default 300000)');
}

function describeMetrics(st: LabStatus): string {
  if (!st.metricsUrl) return '';
  const port = new URL(st.metricsUrl).port;
  return st.metricsPortTaken !== undefined
    ? `; metrics: ${st.metricsUrl} (port ${st.metricsPortTaken} is taken by another listener; chose port ${port})`
    : `; metrics: ${st.metricsUrl}`;
}

function parsePort(v: string): number | string {
  return /^\d+$/.test(v) ? Number(v) : v;
}

export function register(program: Command): void {
  const lab = program
    .command('lab')
    .description('a local cluster of pods in network namespaces, enforced by the weir datapath')
    .hook('preAction', async () => {
      deps = await import('./lab-deps.js');
    });

  withDaemonOptions(withLabOptions(lab.command('up')))
    .description('create the pods of a cluster file (Namespaces, Pods) and start the agent')
    .requiredOption('--cluster <file>', 'YAML with Namespaces and Pods (and optionally NetworkPolicies)')
    .option('--strict', 'exit non-zero also when a policy has a warning')
    .action(async (opts: ConfigFlags & DaemonFlags & { cluster: string; strict?: boolean }) => {
      requireRoot();
      const c = configFrom(opts);
      const options = daemonOptions(opts);
      const { objects, refused } = deps.loadCheckedManifests([opts.cluster]);
      const running = await daemonStatus(c);
      if (running)
        throw new Error(
          `a lab is already up (agent pid ${running.pid}, ${running.pods} pods); add to it with \`weir lab apply -f FILE\` or remove it with \`weir lab down\``,
        );
      const t0 = performance.now();
      const leftover = await deps.teardownLab(c);
      if (leftover.processes + leftover.interfaces > 0)
        say(`cleaned what an earlier lab left: ${leftover.processes} processes, ${leftover.interfaces} interfaces`);
      say(`starting the lab agent (pins ${c.pinRoot}, run dir ${c.runDir})`);
      const st = await startDaemon(c, options);
      say(`agent pid ${st.pid}, enforcement: ${st.enforcement}`);
      const report = await deps.callControl<SourceReport>(
        deps.controlSocketPath(c),
        'POST',
        '/apply',
        { objects },
        say,
      );
      printRefused(refused);
      printReport(report, 'apply');
      process.exitCode = applyExitCode(refused, report, opts.strict === true);
      out(
        `lab up in ${Math.round(performance.now() - t0)} ms: ${report.created.filter((x) => x.startsWith('pod/')).length} pods; control socket ${deps.controlSocketPath(c)}, agent log ${join(c.runDir, 'agent.log')}`,
      );
      out(`flows: ${st.flowApi.join(', ') || 'off'} (weir observe)${describeMetrics(st)}`);
      out('next: weir lab probe --port 80 --protocol TCP');
    });

  withLabOptions(lab.command('apply'))
    .description('create or update NetworkPolicies, Namespaces and Pods; returns once the datapath enforces them')
    .requiredOption('-f, --filename <files...>', 'YAML files or directories')
    .option('--strict', 'exit non-zero also when a policy has a warning (accepted, but not enforced as written)')
    .action(async (opts: ConfigFlags & { filename: string[]; strict?: boolean }) => {
      const c = configFrom(opts);
      // Objects the API server would refuse are named and left out; the others are applied.
      const { objects, refused } = deps.loadCheckedManifests(opts.filename);
      printRefused(refused);
      const report = await deps.callControl<SourceReport>(
        deps.controlSocketPath(c),
        'POST',
        '/apply',
        { objects },
        say,
      );
      printReport(report, 'apply');
      process.exitCode = applyExitCode(refused, report, opts.strict === true);
    });

  withLabOptions(lab.command('delete'))
    .description('delete the objects named in the files; returns once the datapath enforces it')
    .requiredOption('-f, --filename <files...>', 'YAML files or directories')
    .action(async (opts: ConfigFlags & { filename: string[] }) => {
      const c = configFrom(opts);
      const objects = deps.loadManifests(opts.filename);
      printReport(
        await deps.callControl<SourceReport>(deps.controlSocketPath(c), 'POST', '/delete', { objects }, say),
        'delete',
      );
    });

  withLabOptions(lab.command('get'))
    .description('list pods, policies, identities or services')
    .argument('<what>', 'pods | policies | identities | services')
    .addOption(new Option('-o, --output <format>', 'output format').choices(['table', 'json']).default('table'))
    .action(async (what: string, opts: ConfigFlags & { output: string }) => {
      const c = configFrom(opts);
      const sock = deps.controlSocketPath(c);
      const kind = {
        pod: 'pods',
        pods: 'pods',
        po: 'pods',
        policy: 'policies',
        policies: 'policies',
        netpol: 'policies',
        identity: 'identities',
        identities: 'identities',
        service: 'services',
        services: 'services',
        svc: 'services',
      }[what];
      if (!kind)
        throw new Error(`unknown resource ${JSON.stringify(what)}: use pods, policies, identities or services`);
      const rows = await deps.callControl<unknown[]>(sock, 'GET', `/${kind}`);
      if (opts.output === 'json') return out(JSON.stringify(rows, null, 2));
      if (kind === 'pods') {
        const pods = rows as PodView[];
        out(
          deps.formatTable(
            ['NAMESPACE', 'NAME', 'IP', 'IPV6', 'IDENTITY', 'INTERFACE', 'LABELS'],
            pods.map((p) => [
              p.namespace,
              p.name,
              p.ip,
              p.ips[1] ?? '',
              String(p.identity ?? '-'),
              p.interface,
              Object.entries(p.labels)
                .map(([k, v]) => `${k}=${v}`)
                .join(','),
            ]),
          ),
        );
      } else if (kind === 'policies') {
        const ps = rows as PolicyView[];
        out(
          deps.formatTable(
            ['NAMESPACE', 'NAME', 'POD-SELECTOR', 'TYPES', 'INGRESS', 'EGRESS', 'SELECTS'],
            ps.map((p) => [
              p.namespace,
              p.name,
              p.podSelector,
              p.policyTypes.join(','),
              String(p.ingressRules),
              String(p.egressRules),
              p.selects.join(',') || '-',
            ]),
          ),
        );
      } else if (kind === 'services') {
        const ss = rows as ServiceView[];
        out(
          deps.formatTable(
            ['NAMESPACE', 'NAME', 'TYPE', 'CLUSTER-IPS', 'PORTS', 'SELECTOR', 'ENDPOINTS'],
            ss.map((s) => [
              s.namespace,
              s.name,
              s.type,
              s.clusterIPs.join(',') || s.clusterIP || '-',
              s.ports
                .map(
                  (p) =>
                    `${p.name ? `${p.name}:` : ''}${p.port}${p.nodePort ? `:${p.nodePort}` : ''}/${p.protocol}->${p.targetPort}`,
                )
                .join(',') || '-',
              Object.entries(s.selector)
                .map(([k, v]) => `${k}=${v}`)
                .join(',') || '-',
              [...new Set(s.endpoints.filter((e) => e.ready).map((e) => `${e.pod || e.ip}:${e.port}`))].join(',') ||
                '-',
            ]),
          ),
        );
      } else {
        const ids = rows as IdentityView[];
        out(
          deps.formatTable(
            ['IDENTITY', 'PODS', 'LABELS'],
            ids.map((i) => [String(i.identity), i.pods.join(','), i.labels.join(',')]),
          ),
        );
      }
    });

  withLabOptions(lab.command('probe'))
    .description('connect from every pod to every pod at once and print the truth table')
    .option(
      '--port <port>',
      'port number or container port name (with --to-service: the Service port, by number or name)',
      '80',
    )
    .option(
      '--to-service <ns/name>',
      "probe a Service's ClusterIP from every chosen pod and name the pod that answered",
    )
    .addOption(
      new Option('--via <path>', "pod: to each pod's address; service: through the target pod's own Service")
        .choices(['pod', 'service'])
        .default('pod'),
    )
    .addOption(
      new Option('--protocol <proto>', 'protocol').choices(['TCP', 'UDP', 'SCTP', 'tcp', 'udp', 'sctp']).default('TCP'),
    )
    .option('--from <ns/pod>', 'source pod, or NS/ for every pod of a namespace (default: all)')
    .option('--to <ns/pod>', 'destination pod, or NS/ (default: all)')
    .addOption(new Option('--family <n>', 'address family').choices(['4', '6']).default('4'))
    .option('--timeout <ms>', 'per-connection timeout', String(DEFAULT_PROBE_TIMEOUT_MS))
    .addOption(new Option('-o, --output <format>', 'output format').choices(['table', 'json']).default('table'))
    .action(
      async (
        opts: ConfigFlags & {
          port: string;
          protocol: string;
          from?: string;
          to?: string;
          toService?: string;
          via: string;
          family: string;
          timeout: string;
          output: string;
        },
      ) => {
        const c = configFrom(opts);
        const state = deps.readState(c);
        if (!state || state.pods.length === 0)
          throw new Error(`no lab pods found in ${c.runDir}; start one with \`weir lab up --cluster FILE\``);
        const protocol = opts.protocol.toUpperCase() as L4Protocol;
        const port = parsePort(opts.port);
        const family = Number(opts.family) as 4 | 6;
        const services = (): Promise<ServiceView[]> =>
          deps.callControl<ServiceView[]>(deps.controlSocketPath(c), 'GET', '/services');
        const t0 = performance.now();
        if (opts.toService) {
          if (opts.to) throw new Error('--to and --to-service exclude each other');
          const rows = await deps.probeService(state.pods, await services(), {
            service: opts.toService,
            port,
            protocol,
            ...(opts.from ? { from: opts.from } : {}),
            family,
            timeoutMs: Number(opts.timeout),
          });
          if (opts.output === 'json')
            return out(
              JSON.stringify({
                service: opts.toService,
                port,
                protocol,
                results: rows.map(({ from, to, connected, backend }) => ({ from, to, connected, backend })),
              }),
            );
          const ok = rows.filter((r) => r.connected).length;
          out(
            `${protocol} to Service ${opts.toService} (${rows[0]?.address ?? '?'}:${rows[0]?.port ?? '?'}): ${ok} of ${rows.length} connections made in ${Math.round(performance.now() - t0)} ms`,
          );
          out(
            deps.formatTable(
              ['FROM', 'CONNECTED', 'BACKEND', 'DETAIL'],
              rows.map((r) => [r.from, r.connected ? 'yes' : 'no', r.backend ?? '-', r.detail]),
            ),
          );
          return;
        }
        const details = await deps.probePods(
          state.pods,
          {
            port,
            protocol,
            ...(opts.from ? { from: opts.from } : {}),
            ...(opts.to ? { to: opts.to } : {}),
            family,
            timeoutMs: Number(opts.timeout),
            via: opts.via === 'service' ? 'service' : 'pod',
          },
          opts.via === 'service' ? await services() : [],
        );
        const ms = Math.round(performance.now() - t0);
        if (opts.output === 'json') return out(JSON.stringify(deps.toMatrix({ port, protocol }, details)));
        const ok = details.filter((d) => d.connected).length;
        out(
          `${protocol}/${port} over IPv${opts.family}${opts.via === 'service' ? " through each pod's Service" : ''}: ${ok} of ${details.length} connections made in ${ms} ms (. connected, X not)`,
        );
        if (protocol === 'SCTP')
          out(
            'SCTP is probed with raw IP packets (this kernel has no SCTP sockets): an INIT counts as connected when an INIT-ACK comes back',
          );
        out(deps.formatTruthTable({ results: details }));
      },
    );

  withLabOptions(lab.command('status'))
    .description("the lab agent's status: enforcement, realized revision, object counts")
    .action(async (opts: ConfigFlags) => {
      const c = configFrom(opts);
      const st = await daemonStatus(c);
      if (!st)
        throw new Error(
          `no lab agent answers at ${deps.controlSocketPath(c)}; start one with \`weir lab up --cluster FILE\``,
        );
      out(JSON.stringify(st, null, 2));
    });

  withLabOptions(lab.command('restart-agent'))
    .description(
      'kill the lab agent and start a new one that adopts the pinned datapath: shows how long no agent ran, and that connections survived and nothing was widened',
    )
    .action(async (opts: ConfigFlags) => {
      requireRoot();
      const c = configFrom(opts);
      const state = deps.readState(c);
      const st = await daemonStatus(c);
      if (!state?.daemon || !st)
        throw new Error(
          `no lab agent answers at ${deps.controlSocketPath(c)}; start one with \`weir lab up --cluster FILE\``,
        );
      const options: LabDaemonOptions = state.daemon.options ?? { enforce: st.enforcement !== 'none' };
      const { snapshotDatapath, compareSnapshots } = await import('../../lab/restart.js');
      const pinRoot = state.pins ?? state.config.pinRoot;
      const identities = async (): Promise<Map<number, string[]>> =>
        new Map(
          (await deps.callControl<IdentityView[]>(deps.controlSocketPath(c), 'GET', '/identities')).map((v) => [
            v.identity,
            v.labels,
          ]),
        );
      const before = options.enforce ? snapshotDatapath(pinRoot, await identities()) : undefined;
      process.kill(st.pid, 'SIGKILL');
      await waitForExit(st.pid, 5000);
      const gone = performance.now();
      out(`lab agent (pid ${st.pid}) killed`);
      const next = await startDaemon(c, options, true);
      const withoutAgentMs = Math.round(performance.now() - gone);
      out(
        `new lab agent (pid ${next.pid}) adopted ${next.pods} pods and the pins under ${pinRoot}; the datapath ran without an agent for ${withoutAgentMs} ms`,
      );
      if (!before) {
        out('the lab runs without enforcement (--no-enforce): nothing was pinned to keep');
        return;
      }
      const cmp = compareSnapshots(before, snapshotDatapath(pinRoot, await identities()));
      out(
        `established connections: ${cmp.connectionsKept} of ${cmp.connectionsBefore} conntrack entries kept across the restart`,
      );
      if (cmp.widened.length === 0)
        out(
          `nothing was widened: ${cmp.entriesBefore} allow entries before, ${cmp.entriesAfter} after, none added; every endpoint as isolated as before`,
        );
      else {
        for (const w of cmp.widened) say(`widened: ${w}`);
        process.exitCode = 1;
      }
    });

  withLabOptions(lab.command('down'))
    .description(
      'remove every namespace, veth, route, pin and process the lab recorded making, and nothing else (safe to repeat)',
    )
    .action(async (opts: ConfigFlags) => {
      requireRoot();
      const c = configFrom(opts);
      const pods = deps.readState(c)?.pods.length ?? 0;
      const st = await daemonStatus(c);
      if (st) {
        try {
          await deps.callControl(deps.controlSocketPath(c), 'POST', '/shutdown', undefined, undefined, 10_000);
          await waitForExit(st.pid, 5000);
        } catch {
          /* the teardown below ends it */
        }
      }
      const r = await deps.teardownLab(c);
      const what = [
        ...(st ? [`agent (pid ${st.pid}) stopped`] : []),
        ...(pods > 0 ? [`${pods} pod${pods === 1 ? '' : 's'} removed`] : []),
        ...(r.processes + r.interfaces > 0
          ? [`${r.processes} leftover processes and ${r.interfaces} interfaces removed`]
          : []),
        ...(r.pins ? [`pins under ${c.pinRoot} removed`] : []),
        ...(r.sysctlsRestored.length > 0
          ? [`${r.sysctlsRestored.join(' and ')} put back as before the first lab`]
          : []),
      ];
      out(`lab down: ${what.length ? what.join(', ') : 'nothing was running'}`);
    });

  withDaemonOptions(withLabOptions(lab.command('serve', { hidden: true })))
    .description('run the lab agent in the foreground (weir lab up starts it)')
    .option('--adopt', 'take over the running lab recorded in the run dir (restart-agent)')
    .action(async (opts: ConfigFlags & DaemonFlags & { adopt?: boolean }) => {
      const c = configFrom(opts);
      const log = (line: string): void => {
        process.stdout.write(`${new Date().toISOString()} ${line}\n`);
      };
      const svc = await deps.startLabService(c, { ...daemonOptions(opts), log, adopt: opts.adopt === true });
      for (const sig of ['SIGTERM', 'SIGINT'] as const) {
        process.once(sig, () => {
          void svc.stop().then(() => process.exit(0));
        });
      }
      log(`control API on ${deps.controlSocketPath(c)}`);
    });
}
