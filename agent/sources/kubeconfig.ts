/**
 * Credentials for the Kubernetes API without client-node's KubeConfig (which loads every API
 * model: see kube-api.ts). Covers what a node agent meets: the in-cluster service account (its
 * token re-read as the kubelet rotates it) and kubeconfig files with certificates, tokens or
 * basic auth. A kubeconfig whose user runs an exec plugin or an auth provider is handed to
 * client-node's KubeConfig, loaded only then.
 */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type https from 'node:https';
// js-yaml's YAML 1.2 core schema, as the yaml package reads it by default: one YAML library in the agent
import { CORE_SCHEMA, load } from 'js-yaml';
import type { KubeApiConfig } from './kube-api.js';

const SA_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';
/** The kubelet refreshes projected tokens well before they expire; client-go re-reads each minute. */
const TOKEN_REREAD_MS = 60_000;

interface Named<T> {
  name: string;
  [k: string]: T | string;
}

interface ClusterEntry {
  server?: string;
  'certificate-authority'?: string;
  'certificate-authority-data'?: string;
  'insecure-skip-tls-verify'?: boolean;
  'tls-server-name'?: string;
}

interface UserEntry {
  token?: string;
  tokenFile?: string;
  'client-certificate'?: string;
  'client-certificate-data'?: string;
  'client-key'?: string;
  'client-key-data'?: string;
  username?: string;
  password?: string;
  exec?: unknown;
  'auth-provider'?: unknown;
}

export interface KubeCredentialsInit {
  server: string;
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
  token?: string;
  tokenFile?: string;
  basicAuth?: string;
  insecureSkipTLSVerify?: boolean;
  tlsServerName?: string;
}

export class KubeCredentials implements KubeApiConfig {
  private token: { value: string; readAt: number } | undefined;

  constructor(private readonly init: KubeCredentialsInit) {}

  getCurrentCluster(): { server: string } {
    return { server: this.init.server };
  }

  private bearer(): string | undefined {
    const { token, tokenFile } = this.init;
    if (!tokenFile) return token;
    const now = Date.now();
    if (!this.token || now - this.token.readAt > TOKEN_REREAD_MS) {
      this.token = { value: readFileSync(tokenFile, 'utf8').trim(), readAt: now };
    }
    return this.token.value;
  }

  applyToHTTPSOptions(opts: https.RequestOptions): Promise<void> {
    const { ca, cert, key, basicAuth, insecureSkipTLSVerify, tlsServerName } = this.init;
    if (ca) opts.ca = ca;
    if (cert) opts.cert = cert;
    if (key) opts.key = key;
    if (insecureSkipTLSVerify) opts.rejectUnauthorized = false;
    if (tlsServerName) opts.servername = tlsServerName;
    if (basicAuth) opts.auth = basicAuth;
    const bearer = this.bearer();
    if (bearer) opts.headers = { ...(opts.headers as Record<string, string>), Authorization: `Bearer ${bearer}` };
    return Promise.resolve();
  }
}

/** The pod's service account, as `rest.InClusterConfig` reads it. */
export function inClusterCredentials(env: NodeJS.ProcessEnv = process.env, dir = SA_DIR): KubeCredentials {
  const host = env.KUBERNETES_SERVICE_HOST;
  const port = env.KUBERNETES_SERVICE_PORT;
  if (!host || !port) throw new Error('not in a pod: KUBERNETES_SERVICE_HOST/PORT are not set');
  return new KubeCredentials({
    server: `https://${host.includes(':') ? `[${host}]` : host}:${port}`,
    ca: readFileSync(`${dir}/ca.crt`),
    tokenFile: `${dir}/token`,
  });
}

function named<T>(list: unknown, name: string | undefined, what: string, key: string): T {
  const entries = (Array.isArray(list) ? list : []) as Array<Named<T>>;
  const hit = entries.find((e) => e.name === name);
  if (!hit || hit[key] === undefined) throw new Error(`the kubeconfig has no ${what} named "${name ?? ''}"`);
  return hit[key] as T;
}

function material(data: string | undefined, file: string | undefined, baseDir: string): Buffer | undefined {
  if (data) return Buffer.from(data, 'base64');
  if (file) return readFileSync(resolve(baseDir, file));
  return undefined;
}

/**
 * A kubeconfig's current context (or `context`). Resolves to client-node's KubeConfig only when
 * the user entry needs an exec plugin or an auth provider.
 */
export async function kubeconfigCredentials(
  text: string,
  opts: { context?: string; baseDir?: string } = {},
): Promise<KubeApiConfig> {
  const { context, baseDir = process.cwd() } = opts;
  const doc = (load(text, { schema: CORE_SCHEMA }) ?? {}) as Record<string, unknown>;
  const ctxName = context ?? (doc['current-context'] as string | undefined);
  const ctx = named<{ cluster?: string; user?: string }>(doc.contexts, ctxName, 'context', 'context');
  const cluster = named<ClusterEntry>(doc.clusters, ctx.cluster, 'cluster', 'cluster');
  const user: UserEntry = ctx.user ? named<UserEntry>(doc.users, ctx.user, 'user', 'user') : {};
  if (user.exec !== undefined || user['auth-provider'] !== undefined) {
    const { KubeConfig } = await import('@kubernetes/client-node');
    const kc = new KubeConfig();
    kc.loadFromString(text);
    if (context) kc.setCurrentContext(context);
    return kc;
  }
  if (!cluster.server) throw new Error(`the kubeconfig's cluster "${ctx.cluster ?? ''}" has no server`);
  return new KubeCredentials({
    server: cluster.server,
    ca: material(cluster['certificate-authority-data'], cluster['certificate-authority'], baseDir),
    cert: material(user['client-certificate-data'], user['client-certificate'], baseDir),
    key: material(user['client-key-data'], user['client-key'], baseDir),
    token: user.token,
    tokenFile: user.tokenFile === undefined ? undefined : resolve(baseDir, user.tokenFile),
    basicAuth: user.username !== undefined ? `${user.username}:${user.password ?? ''}` : undefined,
    insecureSkipTLSVerify: cluster['insecure-skip-tls-verify'] === true,
    tlsServerName: cluster['tls-server-name'],
  });
}

/** The agent's credentials: a kubeconfig file when given, else the pod's service account. */
export async function loadKubeCredentials(kubeconfigPath?: string): Promise<KubeApiConfig> {
  if (kubeconfigPath) {
    return kubeconfigCredentials(readFileSync(kubeconfigPath, 'utf8'), { baseDir: dirname(resolve(kubeconfigPath)) });
  }
  if (process.env.KUBERNETES_SERVICE_HOST) return inClusterCredentials();
  throw new Error('no Kubernetes configuration: run the agent in a pod (in-cluster) or pass --kubeconfig FILE');
}
