/**
 * Configuration of the node agent (`weir agent`): defaults, the YAML file the Helm chart's ConfigMap
 * holds (`--config`), and command-line flags, which win over the file.
 */
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
// js-yaml's YAML 1.2 core schema, as the yaml package reads it by default: one YAML library in the agent
import { CORE_SCHEMA, load } from 'js-yaml';
import { DEFAULT_PREFIXES_PER_NAMESPACE } from '../ipcache/budget.js';

export const LOG_LEVELS = ['error', 'warn', 'info', 'debug'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface AgentConfig {
  /** This node's name (the downward API's spec.nodeName). */
  nodeName: string;
  /** The agent's own pod (downward API): on SIGTERM its owning DaemonSet decides uninstall or not. */
  podName: string;
  podNamespace: string;
  /** Path of a kubeconfig; empty means in-cluster configuration. */
  kubeconfig: string;
  /** bpffs directory of pinned programs and maps. */
  pinRoot: string;
  /** Directory of the flow socket and runtime files. */
  runDir: string;
  /** The node may reach its pods. */
  hostAccess: boolean;
  /**
   * Allowed new connections emit flow events (`weir observe`, the relay, per-pod metrics). Off:
   * only denied and dropped packets do, and a new connection's verdict skips its event; the
   * verdict and drop metrics come from kernel counters and stay exact.
   */
  allowedFlows: boolean;
  /**
   * A packet between two pods of this node goes straight to the receiving pod's veth (IPv4),
   * past the node's IP stack and netfilter. Off: the node forwards it, its iptables/nftables
   * FORWARD rules and tcpdump on the forward path see it, as without weir.
   */
  localDelivery: boolean;
  /** Pod CIDRs of the cluster; empty means taken from Nodes' spec.podCIDRs. */
  clusterPodCIDRs: string[];
  healthPort: number;
  healthHost: string;
  /** 0 disables the metrics endpoint. */
  metricsPort: number;
  logLevel: LogLevel;
  watchTimeoutSeconds: number;
  flowsCapacity: number;
  /** How often the maps are dumped and drift repaired. */
  resyncIntervalSeconds: number;
  /** Map sizes at load, "weir_policy=65536,weir_ipc_lpm=4096" (empty: the sizes built in). */
  mapMax: string;
  /** Distinct ipBlock prefixes the policies of one namespace may name (agent/ipcache/budget.ts). */
  cidrPrefixesPerNamespace: number;
  /** "host:port" of the flow API's TCP listener for `weir relay`; empty for none. Needs the three TLS files. */
  observerAddress: string;
  /** PEM files of the listener's mutual TLS: the CA clients' certificates must chain to, its certificate and key. */
  observerTlsCa: string;
  observerTlsCert: string;
  observerTlsKey: string;
  /** Per-pod flow metrics (weir_pod_flows_total); off by default: a series per pair of pods. */
  podMetrics: boolean;
  /** Most pods named in per-pod metrics; the rest count as pod "other". */
  podMetricsMaxPods: number;
  /**
   * Services in the datapath: watch Services and EndpointSlices and translate ClusterIP and
   * NodePort traffic to a backend before policy. Off: no frontend is published, and traffic to a
   * Service address is judged as traffic to that address (`world`).
   */
  services: boolean;
  /**
   * Interfaces whose tc hooks translate NodePort traffic (from_node / to_node), by name. Empty: the
   * interfaces that hold one of this node's InternalIP / ExternalIP addresses (its Node object).
   */
  nodePortInterfaces: string[];
}

export const DEFAULT_CONFIG: Omit<AgentConfig, 'nodeName'> = {
  podName: '',
  podNamespace: '',
  kubeconfig: '',
  pinRoot: '/sys/fs/bpf/weir',
  runDir: '/run/weir',
  hostAccess: true,
  allowedFlows: true,
  localDelivery: true,
  clusterPodCIDRs: [],
  healthPort: 9879,
  healthHost: '0.0.0.0',
  metricsPort: 9962,
  logLevel: 'info',
  watchTimeoutSeconds: 300,
  flowsCapacity: 4095,
  resyncIntervalSeconds: 300,
  mapMax: '',
  cidrPrefixesPerNamespace: DEFAULT_PREFIXES_PER_NAMESPACE,
  observerAddress: '',
  observerTlsCa: '',
  observerTlsCert: '',
  observerTlsKey: '',
  podMetrics: false,
  podMetricsMaxPods: 100,
  services: true,
  nodePortInterfaces: [],
};

type Kind = 'string' | 'boolean' | 'port' | 'portOrZero' | 'positive' | 'cidrs' | 'names' | 'logLevel' | 'path';
const KEYS: Record<keyof AgentConfig, Kind> = {
  nodeName: 'string',
  podName: 'string',
  podNamespace: 'string',
  kubeconfig: 'string',
  pinRoot: 'path',
  runDir: 'path',
  hostAccess: 'boolean',
  allowedFlows: 'boolean',
  localDelivery: 'boolean',
  clusterPodCIDRs: 'cidrs',
  healthPort: 'port',
  healthHost: 'string',
  metricsPort: 'portOrZero',
  logLevel: 'logLevel',
  watchTimeoutSeconds: 'positive',
  flowsCapacity: 'positive',
  resyncIntervalSeconds: 'positive',
  mapMax: 'string',
  cidrPrefixesPerNamespace: 'positive',
  observerAddress: 'string',
  observerTlsCa: 'string',
  observerTlsCert: 'string',
  observerTlsKey: 'string',
  podMetrics: 'boolean',
  podMetricsMaxPods: 'positive',
  services: 'boolean',
  nodePortInterfaces: 'names',
};

export const CONFIG_KEYS = Object.keys(KEYS) as Array<keyof AgentConfig>;

/** A Linux interface name: 1-15 bytes, no '/', ':', ',' or white space. */
const IFNAME = /^[^/:,\s]{1,15}$/;

function isCidr(s: string): boolean {
  const [ip, len, extra] = s.split('/');
  if (extra !== undefined || ip === undefined || len === undefined || !/^\d+$/.test(len)) return false;
  const fam = isIP(ip);
  return fam !== 0 && Number(len) <= (fam === 4 ? 32 : 128);
}

/** Checks one value; returns it typed or throws an error naming the key and what is expected. */
function checkValue(key: keyof AgentConfig, value: unknown, where: string): unknown {
  const kind = KEYS[key];
  const fail = (expected: string): never => {
    throw new Error(`${where}: ${key} must be ${expected}, got ${JSON.stringify(value)}`);
  };
  switch (kind) {
    case 'string':
      return typeof value === 'string' ? value : fail('a string');
    case 'path':
      return typeof value === 'string' && value.startsWith('/') ? value : fail('an absolute path');
    case 'boolean':
      if (typeof value === 'boolean') return value;
      if (value === 'true' || value === 'false') return value === 'true';
      return fail('true or false');
    case 'port':
    case 'portOrZero': {
      const n = typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : value;
      const min = kind === 'port' ? 1 : 0;
      return typeof n === 'number' && Number.isInteger(n) && n >= min && n <= 65535
        ? n
        : fail(`a port number (${min}-65535)`);
    }
    case 'positive': {
      const n = typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : value;
      return typeof n === 'number' && Number.isInteger(n) && n > 0 ? n : fail('a positive integer');
    }
    case 'cidrs': {
      const list = typeof value === 'string' ? value.split(',').filter((s) => s.length > 0) : value;
      if (!Array.isArray(list)) return fail('a list of CIDRs');
      for (const c of list)
        if (typeof c !== 'string' || !isCidr(c)) fail('a list of CIDRs like 10.0.0.0/8 or fd00::/48');
      return list;
    }
    case 'names': {
      const list = typeof value === 'string' ? value.split(',').filter((s) => s.length > 0) : value;
      if (!Array.isArray(list)) return fail('a list of interface names');
      for (const n of list)
        if (typeof n !== 'string' || !IFNAME.test(n)) fail('a list of interface names like eth0,ens5');
      return list;
    }
    case 'logLevel':
      return typeof value === 'string' && (LOG_LEVELS as readonly string[]).includes(value)
        ? value
        : fail(`one of ${LOG_LEVELS.join(', ')}`);
  }
}

/** Parses the YAML config file text; unknown keys and wrong types are errors that name the key. */
export function parseConfigText(text: string, where = 'config'): Partial<AgentConfig> {
  const doc: unknown = load(text, { schema: CORE_SCHEMA }) ?? {};
  if (typeof doc !== 'object' || Array.isArray(doc)) throw new Error(`${where}: expected a mapping of settings`);
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(doc as Record<string, unknown>)) {
    if (!(k in KEYS)) throw new Error(`${where}: unknown setting "${k}"; known settings: ${CONFIG_KEYS.join(', ')}`);
    out[k] = checkValue(k as keyof AgentConfig, v, where);
  }
  return out as Partial<AgentConfig>;
}

export function readConfigFile(file: string): Partial<AgentConfig> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new Error(`cannot read config file ${file}: ${err instanceof Error ? err.message : String(err)}`);
  }
  return parseConfigText(text, file);
}

/** The command-line flag of a setting (`watchTimeoutSeconds` -> `--watch-timeout-seconds`). */
function flagOf(k: keyof AgentConfig): string {
  if (k === 'clusterPodCIDRs') return '--cluster-pod-cidrs';
  if (k === 'nodePortInterfaces') return '--nodeport-interfaces';
  return `--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
}

/** Defaults < config file < flags. The node name is required (from --node-name or NODE_NAME). */
export function resolveConfig(
  file: Partial<AgentConfig>,
  flags: Partial<Record<keyof AgentConfig, unknown>>,
): AgentConfig {
  const merged: Record<string, unknown> = { ...DEFAULT_CONFIG, ...file };
  for (const k of CONFIG_KEYS) {
    if (flags[k] !== undefined) merged[k] = checkValue(k, flags[k], flagOf(k));
  }
  if (typeof merged.nodeName !== 'string' || merged.nodeName === '') {
    throw new Error(
      'the node name is required: pass --node-name or set NODE_NAME (the chart sets it from spec.nodeName)',
    );
  }
  if (merged.observerAddress && !(merged.observerTlsCa && merged.observerTlsCert && merged.observerTlsKey)) {
    throw new Error(
      'observerAddress needs observerTlsCa, observerTlsCert and observerTlsKey: the flow API listens on TCP only with mutual TLS',
    );
  }
  return merged as unknown as AgentConfig;
}
