/**
 * `weir agent`: the node agent in Kubernetes mode (what the Helm chart's DaemonSet runs), and
 * `weir agent status`: what a running agent on this node reports.
 */
import { parseMapMax } from '../../datapath/map-max.js';
import type { Command } from 'commander';
import { existsSync } from 'node:fs';
import type { AgentConfig } from '../../node/config.js';
import type { KubeApiConfig } from '../../sources/kube-api.js';

/** The Kubernetes credentials and the agent's modules load only when `weir agent` runs, not for `status` or help. */
const DEFAULT_PIN_ROOT = '/sys/fs/bpf/weir';
const DEFAULT_RUN_DIR = '/run/weir';

interface RunFlags {
  config?: string;
  kubeconfig?: string;
  nodeName?: string;
  podName?: string;
  podNamespace?: string;
  pinRoot?: string;
  runDir?: string;
  hostAccess?: string;
  allowedFlows?: string;
  localDelivery?: string;
  clusterPodCidrs?: string;
  healthPort?: string;
  healthHost?: string;
  metricsPort?: string;
  logLevel?: string;
  watchTimeoutSeconds?: string;
  flowsCapacity?: string;
  resyncIntervalSeconds?: string;
  mapMax?: string;
  cidrPrefixesPerNamespace?: string;
  observerAddress?: string;
  observerTlsCa?: string;
  observerTlsCert?: string;
  observerTlsKey?: string;
  podMetrics?: string;
  podMetricsMaxPods?: string;
  services?: string;
  nodeportInterfaces?: string;
}

async function kubeConfigFor(cfg: AgentConfig): Promise<KubeApiConfig> {
  if (cfg.kubeconfig && !existsSync(cfg.kubeconfig)) throw new Error(`kubeconfig ${cfg.kubeconfig} does not exist`);
  const { loadKubeCredentials } = await import('../../sources/kubeconfig.js');
  return loadKubeCredentials(cfg.kubeconfig);
}

async function run(flags: RunFlags): Promise<void> {
  const { readConfigFile, resolveConfig } = await import('../../node/config.js');
  const { createLogger } = await import('../../node/log.js');
  const file = flags.config ? readConfigFile(flags.config) : {};
  const cfg = resolveConfig(file, {
    nodeName: flags.nodeName ?? process.env.NODE_NAME,
    podName: flags.podName ?? process.env.POD_NAME,
    podNamespace: flags.podNamespace ?? process.env.POD_NAMESPACE,
    kubeconfig: flags.kubeconfig ?? process.env.KUBECONFIG,
    pinRoot: flags.pinRoot,
    runDir: flags.runDir,
    hostAccess: flags.hostAccess,
    allowedFlows: flags.allowedFlows,
    localDelivery: flags.localDelivery,
    clusterPodCIDRs: flags.clusterPodCidrs,
    healthPort: flags.healthPort,
    healthHost: flags.healthHost,
    metricsPort: flags.metricsPort,
    logLevel: flags.logLevel,
    watchTimeoutSeconds: flags.watchTimeoutSeconds,
    flowsCapacity: flags.flowsCapacity,
    resyncIntervalSeconds: flags.resyncIntervalSeconds,
    mapMax: flags.mapMax,
    cidrPrefixesPerNamespace: flags.cidrPrefixesPerNamespace,
    observerAddress: flags.observerAddress,
    observerTlsCa: flags.observerTlsCa,
    observerTlsCert: flags.observerTlsCert,
    observerTlsKey: flags.observerTlsKey,
    podMetrics: flags.podMetrics,
    podMetricsMaxPods: flags.podMetricsMaxPods,
    services: flags.services ?? process.env.WEIR_SERVICES,
    nodePortInterfaces: flags.nodeportInterfaces ?? process.env.WEIR_NODEPORT_INTERFACES,
  });
  parseMapMax(cfg.mapMax ? cfg.mapMax.split(',') : []); // refuse a bad value at start
  const log = createLogger(cfg.logLevel);
  // before the cluster is read (agent/node/memory.ts)
  const { leanStart, MemorySettler } = await import('../../node/memory.js');
  for (const l of leanStart()) log.debug(`memory: ${l}`);
  const kubeConfig = await kubeConfigFor(cfg);
  log.info(
    `weir agent on node ${cfg.nodeName}: API ${kubeConfig.getCurrentCluster()?.server ?? '(unknown)'}, pins ${cfg.pinRoot}`,
  );
  // Loaded here so that `weir agent --help` and config errors need no BPF libraries.
  const { NodeAgent } = await import('../../node/agent.js');
  const agent = await NodeAgent.start({
    config: cfg,
    kubeConfig,
    log,
    // after the first sync and after each burst of changes: garbage and V8's room given back
    memory: new MemorySettler(),
  });
  log.info(
    `health on ${cfg.healthHost}:${cfg.healthPort} (/healthz, /readyz); status on ${cfg.runDir}/agent.sock (weir agent status)`,
  );
  // Follows this agent's DaemonSet, so that an uninstall is recognised even when, at SIGTERM, the API
  // no longer answers this agent (its RBAC and ServiceAccount are deleted with the release).
  const { decideOnStop, OwnerWatch } = await import('../../node/uninstall.js');
  const owner = new OwnerWatch({ kubeConfig, podName: cfg.podName, podNamespace: cfg.podNamespace }, (l) =>
    log.debug(l),
  );
  owner.start();
  let stopping = false;
  const stop = async (signal: string): Promise<void> => {
    if (stopping) return;
    stopping = true;
    // Only a SIGTERM of an uninstall (the agent's DaemonSet gone or being deleted) removes weir from
    // the node; any other stop leaves programs attached and maps pinned.
    const decision =
      signal === 'SIGTERM'
        ? await decideOnStop({ kubeConfig, podName: cfg.podName, podNamespace: cfg.podNamespace, watch: owner })
        : { cleanup: false, reason: 'not a SIGTERM' };
    owner.stop();
    if (decision.cleanup) log.info(`${signal}: ${decision.reason} (uninstall): detaching and unpinning`);
    else log.info(`${signal}: stopping; programs and maps stay pinned and keep enforcing: ${decision.reason}`);
    await agent.stop();
    if (decision.cleanup) {
      const { cleanupNode } = await import('../../node/cleanup.js');
      const r = cleanupNode(cfg.pinRoot);
      log.info(
        `uninstall: detached from ${r.detached.length} interface(s)${r.detached.length ? ` (${r.detached.join(', ')})` : ''}, ${r.removedPins ? `removed ${cfg.pinRoot}` : `${cfg.pinRoot} was not there`}`,
      );
    }
  };
  const onSignal = (signal: string): void => {
    stop(signal).then(
      () => process.exit(0),
      (err: unknown) => {
        log.error(`stopping failed: ${err instanceof Error ? err.message : String(err)}`);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  process.on('SIGINT', () => onSignal('SIGINT'));
}

interface CheckFlags {
  host: string[];
  service?: string;
  healthPort: string;
  metricsPort: string;
}

/** One agent: ready on /readyz and, with a metrics port, serving weir's metrics. Returns problems. */
async function checkAgent(host: string, healthPort: number, metricsPort: number): Promise<string[]> {
  const at = host.includes(':') ? `[${host}]` : host;
  const problems: string[] = [];
  try {
    const res = await fetch(`http://${at}:${healthPort}/readyz`, { signal: AbortSignal.timeout(5000) });
    const body = (await res.text()).trim();
    if (res.status !== 200) problems.push(`${host}: not ready (HTTP ${res.status}: ${body})`);
  } catch (err) {
    problems.push(
      `${host}: no agent answers on port ${healthPort} (${err instanceof Error ? err.message : String(err)})`,
    );
  }
  if (metricsPort > 0) {
    try {
      const res = await fetch(`http://${at}:${metricsPort}/metrics`, { signal: AbortSignal.timeout(5000) });
      const body = await res.text();
      if (res.status !== 200 || !/^weir_policy_verdicts_total/m.test(body))
        problems.push(
          `${host}: /metrics on port ${metricsPort} serves no weir_policy_verdicts_total (HTTP ${res.status})`,
        );
    } catch (err) {
      problems.push(`${host}: no metrics on port ${metricsPort} (${err instanceof Error ? err.message : String(err)})`);
    }
  }
  return problems;
}

/** `weir agent check` (what `helm test` runs): exits non-zero unless every agent asked is ready. */
async function check(flags: CheckFlags): Promise<void> {
  const hosts = new Set(flags.host);
  if (flags.service) {
    const { lookup } = await import('node:dns/promises');
    try {
      for (const a of await lookup(flags.service, { all: true })) hosts.add(a.address);
    } catch (err) {
      throw new Error(`cannot resolve ${flags.service}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  if (hosts.size === 0) throw new Error('no agent to check: pass --host or --service');
  const healthPort = Number(flags.healthPort);
  const metricsPort = Number(flags.metricsPort);
  const problems = (await Promise.all([...hosts].map((h) => checkAgent(h, healthPort, metricsPort)))).flat();
  for (const h of [...hosts].sort())
    if (!problems.some((p) => p.startsWith(`${h}:`)))
      process.stdout.write(`${h}: ready${metricsPort > 0 ? ', metrics served' : ''}\n`);
  if (problems.length) {
    process.stderr.write(`${problems.join('\n')}\n`);
    process.exitCode = 1;
  }
}

interface StatusFlags {
  runDir?: string;
  config?: string;
  output: string;
}

async function status(flags: StatusFlags): Promise<void> {
  const { readAgentStatus } = await import('../../node/status.js');
  const { readConfigFile, DEFAULT_CONFIG } = await import('../../node/config.js');
  // The run dir: the flag, else the agent's config file (the chart's ConfigMap), else the default.
  const runDir =
    flags.runDir ?? (flags.config ? readConfigFile(flags.config).runDir : undefined) ?? DEFAULT_CONFIG.runDir;
  const s = await readAgentStatus<import('../../node/agent.js').NodeAgentStatus>(runDir);
  if (flags.output === 'json') {
    process.stdout.write(`${JSON.stringify(s, null, 2)}\n`);
    return;
  }
  const lines = [
    `node:        ${s.node}`,
    `ready:       ${s.ready ? `yes (first sync enforced after ${s.firstSyncMs} ms)` : 'no'}`,
    `revision:    ${s.revision}`,
    `endpoints:   ${s.endpoints.enforced} with an interface${s.endpoints.waitingForInterface.length ? `, waiting: ${s.endpoints.waitingForInterface.join(', ')}` : ''}`,
    'watches:',
    ...Object.entries(s.watches).map(
      ([r, w]) =>
        `  ${r.padEnd(16)} ${w.synced ? 'synced' : 'not synced'}, ${w.watching ? 'watching' : 'not watching'}, ${w.restarts} restarts${w.lastError ? `, last error: ${w.lastError}` : ''}`,
    ),
  ];
  if (s.sync) {
    lines.push(
      `sync:        ${s.sync.dirty} key(s) queued, ${s.sync.failing.length} failing, ${s.sync.writeFailures} write failures; ${s.sync.resyncs} resyncs repaired ${s.sync.repaired} difference(s)`,
      ...s.sync.failing.map((f) => `  ${f.key}: ${f.error} (attempt ${f.attempts}; the previous state stays)`),
    );
  }
  if (s.nodePorts) {
    const np = s.nodePorts;
    lines.push(
      `nodeports:   ${np.interfaces.length ? np.interfaces.map((i) => `${i.name}${i.addresses.length ? ` (${i.addresses.join(', ')})` : ''}`).join(', ') : 'no interface'}${np.by === 'flag' ? ' (--nodeport-interfaces)' : ''}`,
      ...np.missing.map((m) =>
        np.by === 'flag' ? `  ${m}: no such interface on this node` : `  node address ${m}: on no interface`,
      ),
      ...np.failed.map((f) => `  ${f.name}: ${f.error}`),
    );
  }
  if (s.memorySettles?.count)
    lines.push(
      `memory:      settled ${s.memorySettles.count} time(s) (main loop paused ${s.memorySettles.lastPauseMs} ms the last time, ${s.memorySettles.maxPauseMs} ms at most)`,
    );
  for (const m of s.mapPressure ?? [])
    lines.push(`map pressure: ${m.map} ${m.entries} of ${m.capacity} entries (${Math.round(m.fill * 100)}%)`);
  if (s.forbidden.length)
    lines.push(
      'refused by the API server (403):',
      ...s.forbidden.map((f) => `  ${f.verb} ${f.resource}: ${f.message}`),
    );
  if (s.invalidObjects) lines.push(`invalid objects received: ${s.invalidObjects} (see the agent log)`);
  if (s.policyErrors.length) lines.push('policy errors:', ...s.policyErrors.map((e) => `  ${e}`));
  if (s.policyWarnings.length) lines.push('policy warnings:', ...s.policyWarnings.map((e) => `  ${e}`));
  process.stdout.write(`${lines.join('\n')}\n`);
}

export function register(program: Command): void {
  const agent = program
    .command('agent')
    .description('the node agent in Kubernetes mode (run by the Helm chart as a DaemonSet)');
  agent
    .command('run', { isDefault: true })
    .description("watch the API server and enforce every NetworkPolicy on this node's pods")
    .option('--config <file>', "YAML settings (the chart's ConfigMap); flags win over it")
    .option('--kubeconfig <file>', 'kubeconfig to use instead of the in-cluster configuration (env KUBECONFIG)')
    .option('--node-name <name>', "this node's name (env NODE_NAME, from the downward API)")
    .option('--pod-name <name>', "the agent's own pod, whose DaemonSet decides uninstall on SIGTERM (env POD_NAME)")
    .option('--pod-namespace <ns>', "the agent's own pod's namespace (env POD_NAMESPACE)")
    .option('--pin-root <dir>', 'bpffs directory for pinned programs and maps (default /sys/fs/bpf/weir)')
    .option('--run-dir <dir>', 'directory of the flow and control sockets (default /run/weir)')
    .option('--host-access <bool>', 'let the node reach its pods (default true)')
    .option('--allowed-flows <bool>', 'allowed new connections emit flow events (default true; false: only drops do)')
    .option(
      '--local-delivery <bool>',
      "packets between pods of this node skip the node's IP stack and netfilter (default true; false: the node forwards them)",
    )
    .option(
      '--services <bool>',
      'translate Service ClusterIPs and NodePorts to backends before policy (env WEIR_SERVICES, default true); false: traffic to a Service address is judged as world',
    )
    .option(
      '--nodeport-interfaces <list>',
      "comma-separated interfaces that serve NodePorts (env WEIR_NODEPORT_INTERFACES); default: those holding the Node's InternalIP/ExternalIP addresses",
    )
    .option('--cluster-pod-cidrs <list>', "comma-separated pod CIDRs in addition to the Nodes' spec.podCIDRs")
    .option('--health-port <port>', '/healthz and /readyz port (default 9879)')
    .option('--health-host <addr>', 'address of the health endpoints (default 0.0.0.0)')
    .option('--metrics-port <port>', 'Prometheus /metrics port, 0 to disable (default 9962)')
    .option('--log-level <level>', 'error, warn, info or debug (default info)')
    .option('--watch-timeout-seconds <n>', 'server-side timeout of each watch (default 300)')
    .option('--resync-interval-seconds <n>', 'how often the maps are dumped and drift repaired (default 300)')
    .option('--map-max <list>', 'map sizes at load, e.g. weir_policy=65536,weir_ipc_lpm=4096')
    .option('--flows-capacity <n>', 'recent flows kept for `weir observe --last` (default 4095)')
    .option('--observer-address <host:port>', 'also serve the flow API on TCP, for `weir relay` (mutual TLS required)')
    .option('--observer-tls-ca <file>', "CA (PEM) the relay's client certificate must chain to")
    .option('--observer-tls-cert <file>', "the listener's certificate (PEM)")
    .option('--observer-tls-key <file>', "the listener's private key (PEM)")
    .option(
      '--cidr-prefixes-per-namespace <n>',
      "distinct ipBlock prefixes one namespace's policies may name; a policy over it is refused (default 20480)",
    )
    .option(
      '--pod-metrics <bool>',
      'per-pod flow metrics, weir_pod_flows_total by source and destination pod (default false)',
    )
    .option('--pod-metrics-max-pods <n>', 'pods named in per-pod metrics; the rest count as "other" (default 100)')
    .action((flags: RunFlags) => run(flags));
  agent
    .command('cleanup')
    .description(
      'remove weir from this node: detach its programs from every interface and delete its pins (after helm uninstall)',
    )
    .option('--pin-root <dir>', 'bpffs directory of the pins', DEFAULT_PIN_ROOT)
    .action(async (flags: { pinRoot: string }) => {
      const { cleanupNode } = await import('../../node/cleanup.js');
      const r = cleanupNode(flags.pinRoot);
      process.stdout.write(
        `detached from ${r.detached.length} interface(s)${r.detached.length ? `: ${r.detached.join(', ')}` : ''}\n` +
          `${r.removedPins ? `removed ${flags.pinRoot}` : `${flags.pinRoot} was not there`}\n`,
      );
    });
  agent
    .command('check')
    .description('exit non-zero unless the agents asked are ready (and serve metrics): what `helm test` runs')
    .option(
      '--host <addr>',
      'an agent to check (repeatable)',
      (v: string, acc: string[]) => [...acc, v],
      [] as string[],
    )
    .option('--service <name>', 'also check every address this name resolves to (the headless metrics Service)')
    .option('--health-port <port>', 'agent health port', '9879')
    .option('--metrics-port <port>', 'metrics port to check as well, 0 to skip', '0')
    .action((flags: CheckFlags) => check(flags));
  agent
    .command('status')
    .description('show what the agent on this node reports: readiness, watches, endpoints, policy problems')
    .option('--run-dir <dir>', `the agent's run dir, where its control socket is (default ${DEFAULT_RUN_DIR})`)
    .option('--config <file>', "take the run dir from the agent's config file (the chart's /etc/weir/config.yaml)")
    .option('-o, --output <format>', 'text or json', 'text')
    .action((flags: StatusFlags) => status(flags));
}
