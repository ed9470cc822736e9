/**
 * `weir relay`: one flow API for the whole cluster (what the chart's relay Deployment runs).
 * Finds every agent through the API (the pods of weir's DaemonSet), or from --peer flags,
 * talks to each agent's flow API over TCP with mutual TLS, and serves the same Observer API:
 * GetFlows merged across nodes, GetNodes, ServerStatus summed.
 */
import type { Command } from 'commander';
import { existsSync, readFileSync } from 'node:fs';

interface RelayFlags {
  listen: string;
  tlsCa?: string;
  tlsCert?: string;
  tlsKey?: string;
  peerTlsCa: string;
  peerTlsCert: string;
  peerTlsKey: string;
  peerServerName: string;
  peer: string[];
  kubeconfig?: string;
  namespace?: string;
  agentSelector: string;
  agentPort: string;
  checkInterval: string;
  logLevel: string;
}

export const DEFAULT_AGENT_SELECTOR = 'app.kubernetes.io/name=weir,app.kubernetes.io/component=agent';
export const DEFAULT_PEER_SERVER_NAME = 'weir-agent';

function readPem(path: string, what: string): Buffer {
  if (!existsSync(path)) throw new Error(`${what} ${path} does not exist`);
  return readFileSync(path);
}

/** "node-1=10.0.0.1:4244" -> { name, address }. */
export function parsePeer(v: string): { name: string; address: string } {
  const m = /^([^=]+)=(.+:\d+)$/.exec(v);
  if (!m) throw new Error(`--peer "${v}" must be NODE=HOST:PORT`);
  return { name: m[1]!, address: m[2]! };
}

async function run(flags: RelayFlags): Promise<void> {
  const grpc = await import('@grpc/grpc-js');
  const { createLogger } = await import('../../node/log.js');
  const { PeerSet } = await import('../../relay/peers.js');
  const { Relay } = await import('../../relay/relay.js');
  const { startObserverService } = await import('../../flows/server.js');
  const { weirVersion } = await import('../../flows/assets.js');
  const log = createLogger(flags.logLevel as 'info');

  const credentials = grpc.credentials.createSsl(
    readPem(flags.peerTlsCa, '--peer-tls-ca'),
    readPem(flags.peerTlsKey, '--peer-tls-key'),
    readPem(flags.peerTlsCert, '--peer-tls-cert'),
  );
  const peers = new PeerSet({
    credentials,
    serverName: flags.peerServerName,
    checkIntervalMs: Number(flags.checkInterval) * 1000,
  });
  peers.on('change', (c: { peer: { name: string; address: string }; state: number; message: string }) => {
    const what = ['unknown', 'connected', 'unavailable', 'gone', 'error'][c.state] ?? String(c.state);
    log.info(`node ${c.peer.name} (${c.peer.address}) ${what}${c.message ? `: ${c.message}` : ''}`);
  });
  peers.start();

  let discovery: { stop(): void } | undefined;
  if (flags.peer.length > 0) {
    peers.update(flags.peer.map(parsePeer));
  } else {
    // The API through plain requests (agent/sources/kube-api.ts): no Kubernetes client models.
    const { loadKubeCredentials } = await import('../../sources/kubeconfig.js');
    const { startKubernetesDiscovery } = await import('../../relay/discovery.js');
    if (!flags.kubeconfig && !process.env.KUBERNETES_SERVICE_HOST)
      throw new Error(
        'no Kubernetes configuration: run in a pod, pass --kubeconfig FILE, or list --peer NODE=HOST:PORT',
      );
    const kubeConfig = await loadKubeCredentials(flags.kubeconfig);
    const namespace = flags.namespace ?? process.env.POD_NAMESPACE ?? 'default';
    discovery = await startKubernetesDiscovery(
      {
        kubeConfig,
        namespace,
        selector: flags.agentSelector,
        port: Number(flags.agentPort),
        onError: (m) => log.warn(m),
      },
      (list) => peers.update(list),
    );
    log.info(`agents: pods ${flags.agentSelector} in ${namespace}, flow API port ${flags.agentPort}`);
  }

  const tls =
    flags.tlsCa || flags.tlsCert || flags.tlsKey
      ? {
          ca: readPem(flags.tlsCa ?? '', '--tls-ca'),
          cert: readPem(flags.tlsCert ?? '', '--tls-cert'),
          key: readPem(flags.tlsKey ?? '', '--tls-key'),
        }
      : undefined;
  const relay = new Relay(peers, { version: weirVersion() });
  const server = await startObserverService(relay, { socketPath: '', tcpAddress: flags.listen, tls });
  log.info(`weir relay: flow API on ${server.addresses.join(', ')}${tls ? ' (mutual TLS)' : ''}`);
  const stop = (sig: string) => {
    log.info(`${sig}: stopping`);
    discovery?.stop();
    peers.stop();
    void server.close().then(() => process.exit(0));
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
}

export function register(program: Command): void {
  const collect = (v: string, prev: string[] = []) => [...prev, v];
  program
    .command('relay')
    .description("one flow API for the whole cluster: every agent's flows merged, GetNodes, summed status")
    .option('--listen <host:port>', 'where to serve the flow API', '0.0.0.0:4245')
    .option('--tls-ca <file>', "serve with mutual TLS: the CA clients' certificates must chain to")
    .option('--tls-cert <file>', "the relay's server certificate (PEM)")
    .option('--tls-key <file>', "the relay's server key (PEM)")
    .requiredOption('--peer-tls-ca <file>', "CA (PEM) the agents' certificates chain to")
    .requiredOption('--peer-tls-cert <file>', "the relay's client certificate for the agents (PEM)")
    .requiredOption('--peer-tls-key <file>', "the relay's client key for the agents (PEM)")
    .option('--peer-server-name <name>', "the name in the agents' certificates", DEFAULT_PEER_SERVER_NAME)
    .option(
      '--peer <node=host:port>',
      'an agent to use instead of discovering them through the API (repeatable)',
      collect,
      [],
    )
    .option('--kubeconfig <file>', 'kubeconfig instead of the in-cluster configuration')
    .option('--namespace <ns>', "namespace of the agents' pods (env POD_NAMESPACE)")
    .option('--agent-selector <selector>', "label selector of the agents' pods", DEFAULT_AGENT_SELECTOR)
    .option('--agent-port <port>', "the agents' flow API TCP port", '4244')
    .option('--check-interval <seconds>', "how often each agent's state is checked", '5')
    .option('--log-level <level>', 'error, warn, info or debug', 'info')
    .action((flags: RelayFlags) => run(flags));
}
