/**
 * `weir agent`: the node agent in Kubernetes mode (what the Helm chart's DaemonSet runs), and
 * `weir agent status`: what a running agent on this node reports.
 */
import type { Command } from 'commander';
import { existsSync } from 'node:fs';
import { DEFAULT_CONFIG, readConfigFile, resolveConfig, type AgentConfig } from '../../node/config.js';
import { createLogger } from '../../node/log.js';
import { loadKubeCredentials } from '../../sources/kubeconfig.js';
import type { KubeApiConfig } from '../../sources/kube-api.js';

interface RunFlags {
  config?: string;
  kubeconfig?: string;
  nodeName?: string;
  pinRoot?: string;
  runDir?: string;
  hostAccess?: string;
  clusterPodCidrs?: string;
  healthPort?: string;
  healthHost?: string;
  metricsPort?: string;
  logLevel?: string;
  watchTimeoutSeconds?: string;
  flowsCapacity?: string;
}

function kubeConfigFor(cfg: AgentConfig): Promise<KubeApiConfig> {
  if (cfg.kubeconfig && !existsSync(cfg.kubeconfig)) throw new Error(`kubeconfig ${cfg.kubeconfig} does not exist`);
  return loadKubeCredentials(cfg.kubeconfig);
}

async function run(flags: RunFlags): Promise<void> {
  const file = flags.config ? readConfigFile(flags.config) : {};
  const cfg = resolveConfig(file, {
    nodeName: flags.nodeName ?? process.env.NODE_NAME,
    kubeconfig: flags.kubeconfig ?? process.env.KUBECONFIG,
    pinRoot: flags.pinRoot,
    runDir: flags.runDir,
    hostAccess: flags.hostAccess,
    clusterPodCIDRs: flags.clusterPodCidrs,
    healthPort: flags.healthPort,
    healthHost: flags.healthHost,
    metricsPort: flags.metricsPort,
    logLevel: flags.logLevel,
    watchTimeoutSeconds: flags.watchTimeoutSeconds,
    flowsCapacity: flags.flowsCapacity,
  });
  const log = createLogger(cfg.logLevel);
  const kubeConfig = await kubeConfigFor(cfg);
  log.info(
    `weir agent on node ${cfg.nodeName}: API ${kubeConfig.getCurrentCluster()?.server ?? '(unknown)'}, pins ${cfg.pinRoot}`,
  );
  // Loaded here so that `weir agent --help` and config errors need no BPF libraries.
  const { NodeAgent } = await import('../../node/agent.js');
  const agent = await NodeAgent.start({ config: cfg, kubeConfig, log });
  log.info(`health on ${cfg.healthHost}:${cfg.healthPort} (/healthz, /readyz, /statusz)`);
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log.info(`${signal}: stopping; programs and maps stay pinned and keep enforcing`);
    agent.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error(`stopping failed: ${err instanceof Error ? err.message : String(err)}`);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

interface StatusFlags {
  host: string;
  port: string;
  output: string;
}

async function status(flags: StatusFlags): Promise<void> {
  const url = `http://${flags.host}:${flags.port}/statusz`;
  let body: string;
  try {
    const res = await fetch(url);
    body = await res.text();
  } catch (err) {
    throw new Error(
      `no agent answers on ${url} (${err instanceof Error ? err.message : String(err)}); is weir agent running on this node, with --health-port ${flags.port}?`,
    );
  }
  if (flags.output === 'json') {
    process.stdout.write(body);
    return;
  }
  const s = JSON.parse(body) as import('../../node/agent.js').NodeAgentStatus;
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
    .option('--pin-root <dir>', 'bpffs directory for pinned programs and maps (default /sys/fs/bpf/weir)')
    .option('--run-dir <dir>', 'directory of the flow socket (default /run/weir)')
    .option('--host-access <bool>', 'let the node reach its pods (default true)')
    .option('--cluster-pod-cidrs <list>', "comma-separated pod CIDRs in addition to the Nodes' spec.podCIDRs")
    .option('--health-port <port>', '/healthz, /readyz, /statusz port (default 9879)')
    .option('--health-host <addr>', 'address of the health endpoints (default 0.0.0.0)')
    .option('--metrics-port <port>', 'Prometheus /metrics port, 0 to disable (default 9962)')
    .option('--log-level <level>', 'error, warn, info or debug (default info)')
    .option('--watch-timeout-seconds <n>', 'server-side timeout of each watch (default 300)')
    .option('--flows-capacity <n>', 'recent flows kept for `weir observe --last` (default 4095)')
    .action((flags: RunFlags) => run(flags));
  agent
    .command('cleanup')
    .description(
      'remove weir from this node: detach its programs from every interface and delete its pins (after helm uninstall)',
    )
    .option('--pin-root <dir>', 'bpffs directory of the pins', DEFAULT_CONFIG.pinRoot)
    .action(async (flags: { pinRoot: string }) => {
      const { cleanupNode } = await import('../../node/cleanup.js');
      const r = cleanupNode(flags.pinRoot);
      process.stdout.write(
        `detached from ${r.detached.length} interface(s)${r.detached.length ? `: ${r.detached.join(', ')}` : ''}\n` +
          `${r.removedPins ? `removed ${flags.pinRoot}` : `${flags.pinRoot} was not there`}\n`,
      );
    });
  agent
    .command('status')
    .description('show what the agent on this node reports: readiness, watches, endpoints, policy problems')
    .option('--host <addr>', 'agent health address', '127.0.0.1')
    .option('--port <port>', 'agent health port', '9879')
    .option('-o, --output <format>', 'text or json', 'text')
    .action((flags: StatusFlags) => status(flags));
}
