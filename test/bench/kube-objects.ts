/**
 * Cluster objects shaped as the kubelet, the scheduler and the controllers write them, for the
 * benches that run the real agent against the test API server: what a list or watch of a real
 * cluster sends, so the agent parses and drops what it would drop there.
 *
 * - Pods of a Deployment: ReplicaSet owner reference, `pod-template-hash`, managedFields of
 *   kube-controller-manager (the spec) and of the kubelet (the status subresource), a projected
 *   service-account volume, probes, resources, tolerations, and a status with the five
 *   conditions, container statuses (with their volume mounts, as 1.31+ reports them), hostIPs and
 *   podIPs.
 * - Nodes with capacity, allocatable, conditions with heartbeats, daemon endpoints, node info and
 *   a list of cached images, as the kubelet reports them.
 * - Services (ClusterIP, applied with kubectl: the last-applied annotation) and their
 *   EndpointSlices (endpointslice-controller: owner reference, one endpoint per ready pod with
 *   conditions, nodeName, targetRef and zone).
 * - NetworkPolicies applied with kubectl: default deny, same-namespace, cross-namespace peers
 *   with ports, DNS egress.
 */
import type { KubeObject } from '../apiserver/server.js';

/** Short stable pseudo-random hex for names and hashes. */
export function hash(n: number): string {
  return ((Math.imul(n + 1, 2654435761) >>> 0).toString(16) + (Math.imul(n + 7, 40503) >>> 0).toString(16))
    .padStart(10, '0')
    .slice(-10);
}

const T = '2026-11-01T10:00:00Z';
const ZONES = ['zone-a', 'zone-b', 'zone-c'];

export interface ClusterShape {
  namespaces: number;
  podsPerNs: number;
  nodes: number;
  policiesPerNs: number;
  servicesPerNs: number;
  /** Pods placed on node-0 (the agent's node) before the rest are spread. */
  localPods: number;
  /** Distinct `app` label values in a namespace (one Deployment and one Service each). */
  appsPerNs: number;
}

export const nodeIp = (n: number): string => `172.16.${n >> 8}.${(n & 255) + 1}`;
export const nodeCidr = (n: number): string => `10.${64 + (n >> 8)}.${n & 255}.0/24`;

const fieldsOfLabels = (labels: Record<string, string>): Record<string, unknown> => ({
  '.': {},
  ...Object.fromEntries(Object.keys(labels).map((k) => [`f:${k}`, {}])),
});

/** The images a node has pulled, as the kubelet lists them (the same on every generated node). */
const NODE_IMAGES = Array.from({ length: 20 }, (_, k) => ({
  names: [
    `registry.example/team-${k}/app@sha256:${hash(k).repeat(7).slice(0, 64)}`,
    `registry.example/team-${k}/app:1.${k}.0`,
  ],
  sizeBytes: 20_000_000 + k * 1_234_567,
}));

/** A Node as the kubelet registers and updates it. */
export function kubeletNode(n: number): KubeObject {
  const name = `node-${n}`;
  const labels = {
    'beta.kubernetes.io/arch': 'amd64',
    'beta.kubernetes.io/os': 'linux',
    'kubernetes.io/arch': 'amd64',
    'kubernetes.io/hostname': name,
    'kubernetes.io/os': 'linux',
    'node.kubernetes.io/instance-type': 'n2-standard-8',
    'topology.kubernetes.io/region': 'region-1',
    'topology.kubernetes.io/zone': ZONES[n % 3]!,
  };
  const condition = (type: string, status: string, reason: string, message: string): Record<string, unknown> => ({
    type,
    status,
    lastHeartbeatTime: T,
    lastTransitionTime: T,
    reason,
    message,
  });
  return {
    kind: 'Node',
    metadata: {
      name,
      labels,
      annotations: {
        'node.alpha.kubernetes.io/ttl': '0',
        'volumes.kubernetes.io/controller-managed-attach-detach': 'true',
        'csi.volume.kubernetes.io/nodeid': `{"pd.csi.storage.gke.io":"projects/p/zones/${ZONES[n % 3]}/instances/${name}"}`,
      },
      managedFields: [
        {
          manager: 'kubelet',
          operation: 'Update',
          apiVersion: 'v1',
          time: T,
          fieldsType: 'FieldsV1',
          fieldsV1: {
            'f:metadata': {
              'f:annotations': { '.': {}, 'f:volumes.kubernetes.io/controller-managed-attach-detach': {} },
              'f:labels': fieldsOfLabels(labels),
            },
            'f:spec': { 'f:providerID': {} },
          },
        },
        {
          manager: 'kube-controller-manager',
          operation: 'Update',
          apiVersion: 'v1',
          time: T,
          fieldsType: 'FieldsV1',
          fieldsV1: {
            'f:metadata': { 'f:annotations': { 'f:node.alpha.kubernetes.io/ttl': {} } },
            'f:spec': { 'f:podCIDR': {}, 'f:podCIDRs': { '.': {}, [`v:"${nodeCidr(n)}"`]: {} } },
          },
        },
        {
          manager: 'kubelet',
          operation: 'Update',
          apiVersion: 'v1',
          time: T,
          fieldsType: 'FieldsV1',
          subresource: 'status',
          fieldsV1: {
            'f:status': { 'f:allocatable': {}, 'f:capacity': {}, 'f:conditions': {}, 'f:images': {}, 'f:nodeInfo': {} },
          },
        },
      ],
    },
    spec: { podCIDR: nodeCidr(n), podCIDRs: [nodeCidr(n)], providerID: `gce://p/${ZONES[n % 3]}/${name}` },
    status: {
      capacity: {
        cpu: '8',
        'ephemeral-storage': '98831908Ki',
        'hugepages-2Mi': '0',
        memory: '32880824Ki',
        pods: '110',
      },
      allocatable: {
        cpu: '7910m',
        'ephemeral-storage': '47060071478',
        'hugepages-2Mi': '0',
        memory: '29094072Ki',
        pods: '110',
      },
      conditions: [
        condition('MemoryPressure', 'False', 'KubeletHasSufficientMemory', 'kubelet has sufficient memory available'),
        condition('DiskPressure', 'False', 'KubeletHasNoDiskPressure', 'kubelet has no disk pressure'),
        condition('PIDPressure', 'False', 'KubeletHasSufficientPID', 'kubelet has sufficient PID available'),
        condition('Ready', 'True', 'KubeletReady', 'kubelet is posting ready status'),
      ],
      addresses: [
        { type: 'InternalIP', address: nodeIp(n) },
        { type: 'Hostname', address: name },
      ],
      daemonEndpoints: { kubeletEndpoint: { Port: 10250 } },
      nodeInfo: {
        machineID: hash(n).repeat(4).slice(0, 32),
        systemUUID: hash(n + 1)
          .repeat(4)
          .slice(0, 32),
        bootID: hash(n + 2)
          .repeat(4)
          .slice(0, 32),
        kernelVersion: '6.1.0-27-cloud-amd64',
        osImage: 'Debian GNU/Linux 12 (bookworm)',
        containerRuntimeVersion: 'containerd://1.7.24',
        kubeletVersion: 'v1.34.1',
        kubeProxyVersion: 'v1.34.1',
        operatingSystem: 'linux',
        architecture: 'amd64',
      },
      images: NODE_IMAGES,
    },
  };
}

const probe = (path: string): Record<string, unknown> => ({
  httpGet: { path, port: 'http', scheme: 'HTTP' },
  timeoutSeconds: 1,
  periodSeconds: 10,
  successThreshold: 1,
  failureThreshold: 3,
});
const CONTAINER_FIELDS = {
  '.': {},
  'f:image': {},
  'f:imagePullPolicy': {},
  'f:livenessProbe': { '.': {}, 'f:httpGet': { '.': {}, 'f:path': {}, 'f:port': {}, 'f:scheme': {} } },
  'f:name': {},
  'f:ports': {
    '.': {},
    'k:{"containerPort":8080,"protocol":"TCP"}': { '.': {}, 'f:containerPort': {}, 'f:name': {}, 'f:protocol': {} },
  },
  'f:readinessProbe': { '.': {}, 'f:httpGet': { '.': {}, 'f:path': {}, 'f:port': {}, 'f:scheme': {} } },
  'f:resources': {
    '.': {},
    'f:limits': { '.': {}, 'f:memory': {} },
    'f:requests': { '.': {}, 'f:cpu': {}, 'f:memory': {} },
  },
  'f:securityContext': { '.': {}, 'f:allowPrivilegeEscalation': {}, 'f:readOnlyRootFilesystem': {} },
  'f:terminationMessagePath': {},
  'f:terminationMessagePolicy': {},
};

/*
 * What every Pod of the generated cluster holds alike is one shared object (the generated cluster
 * is read-only after creation): the bench process holds 100,000 Pods without holding 100,000
 * copies of their probes, tolerations and managedFields trees. Their JSON is whole either way.
 */
const POD_CONSTANTS = {
  liveness: probe('/healthz'),
  readiness: probe('/readyz'),
  env: [
    { name: 'LOG_LEVEL', value: 'info' },
    { name: 'POD_NAME', valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.name' } } },
  ],
  resources: { requests: { cpu: '100m', memory: '128Mi' }, limits: { memory: '256Mi' } },
  containerSecurity: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true },
  projected: {
    defaultMode: 420,
    sources: [
      { serviceAccountToken: { expirationSeconds: 3607, path: 'token' } },
      { configMap: { name: 'kube-root-ca.crt', items: [{ key: 'ca.crt', path: 'ca.crt' }] } },
      {
        downwardAPI: {
          items: [{ path: 'namespace', fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.namespace' } }],
        },
      },
    ],
  },
  tolerations: [
    { key: 'node.kubernetes.io/not-ready', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300 },
    { key: 'node.kubernetes.io/unreachable', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300 },
  ],
  conditions: ['PodReadyToStartContainers', 'Initialized', 'Ready', 'ContainersReady', 'PodScheduled'].map((type) => ({
    type,
    status: 'True',
    lastProbeTime: null,
    lastTransitionTime: T,
  })),
  specFields: {
    'f:containers': { 'k:{"name":"app"}': CONTAINER_FIELDS },
    'f:dnsPolicy': {},
    'f:enableServiceLinks': {},
    'f:restartPolicy': {},
    'f:schedulerName': {},
    'f:securityContext': { '.': {}, 'f:runAsNonRoot': {} },
    'f:serviceAccount': {},
    'f:serviceAccountName': {},
    'f:terminationGracePeriodSeconds': {},
  },
  statusConditionFields: Object.fromEntries(
    ['ContainersReady', 'Initialized', 'PodReadyToStartContainers', 'Ready'].map((c) => [
      `k:{"type":"${c}"}`,
      { '.': {}, 'f:lastProbeTime': {}, 'f:lastTransitionTime': {}, 'f:status': {}, 'f:type': {} },
    ]),
  ),
  running: { running: { startedAt: T } },
  podSecurity: { runAsNonRoot: true },
  annotations: { 'kubectl.kubernetes.io/restartedAt': T },
  annotationFields: { '.': {}, 'f:kubectl.kubernetes.io/restartedAt': {} },
  labelFields: { '.': {}, 'f:app': {}, 'f:pod-template-hash': {} },
};

/** A Pod as the API server holds it after the ReplicaSet controller, the scheduler and the kubelet wrote it. */
export function kubeletPod(ns: string, i: number, node: string, hostIp: string, ip: string, app: string): KubeObject {
  const tpl = hash(i % 7);
  const rs = `${app}-${tpl}`;
  const name = `${rs}-${hash(i).slice(0, 5)}`;
  const vol = `kube-api-access-${hash(i).slice(0, 5)}`;
  const image = `registry.example/${app}:1.2.3`;
  const labels = { app, 'pod-template-hash': tpl };
  return {
    kind: 'Pod',
    metadata: {
      name,
      namespace: ns,
      generateName: `${rs}-`,
      labels,
      annotations: POD_CONSTANTS.annotations,
      ownerReferences: [
        {
          apiVersion: 'apps/v1',
          kind: 'ReplicaSet',
          name: rs,
          uid: `rs-${ns}-${tpl}`,
          controller: true,
          blockOwnerDeletion: true,
        },
      ],
      managedFields: [
        {
          manager: 'kube-controller-manager',
          operation: 'Update',
          apiVersion: 'v1',
          time: T,
          fieldsType: 'FieldsV1',
          fieldsV1: {
            'f:metadata': {
              'f:annotations': POD_CONSTANTS.annotationFields,
              'f:generateName': {},
              'f:labels': POD_CONSTANTS.labelFields,
              'f:ownerReferences': { '.': {}, [`k:{"uid":"rs-${ns}-${tpl}"}`]: {} },
            },
            'f:spec': POD_CONSTANTS.specFields,
          },
        },
        {
          manager: 'kubelet',
          operation: 'Update',
          apiVersion: 'v1',
          time: T,
          fieldsType: 'FieldsV1',
          subresource: 'status',
          fieldsV1: {
            'f:status': {
              'f:conditions': POD_CONSTANTS.statusConditionFields,
              'f:containerStatuses': {},
              'f:hostIP': {},
              'f:hostIPs': {},
              'f:phase': {},
              'f:podIP': {},
              'f:podIPs': { '.': {}, [`k:{"ip":"${ip}"}`]: { '.': {}, 'f:ip': {} } },
              'f:startTime': {},
            },
          },
        },
      ],
    },
    spec: {
      nodeName: node,
      serviceAccountName: 'default',
      serviceAccount: 'default',
      restartPolicy: 'Always',
      dnsPolicy: 'ClusterFirst',
      schedulerName: 'default-scheduler',
      terminationGracePeriodSeconds: 30,
      enableServiceLinks: true,
      priority: 0,
      preemptionPolicy: 'PreemptLowerPriority',
      securityContext: POD_CONSTANTS.podSecurity,
      containers: [
        {
          name: 'app',
          image,
          imagePullPolicy: 'IfNotPresent',
          ports: [{ name: 'http', containerPort: 8080, protocol: 'TCP' }],
          env: POD_CONSTANTS.env,
          resources: POD_CONSTANTS.resources,
          livenessProbe: POD_CONSTANTS.liveness,
          readinessProbe: POD_CONSTANTS.readiness,
          securityContext: POD_CONSTANTS.containerSecurity,
          volumeMounts: [{ name: vol, mountPath: '/var/run/secrets/kubernetes.io/serviceaccount', readOnly: true }],
          terminationMessagePath: '/dev/termination-log',
          terminationMessagePolicy: 'File',
        },
      ],
      volumes: [
        {
          name: vol,
          projected: POD_CONSTANTS.projected,
        },
      ],
      tolerations: POD_CONSTANTS.tolerations,
    },
    status: {
      phase: 'Running',
      conditions: POD_CONSTANTS.conditions,
      hostIP: hostIp,
      hostIPs: [{ ip: hostIp }],
      podIP: ip,
      podIPs: [{ ip }],
      startTime: T,
      qosClass: 'Burstable',
      containerStatuses: [
        {
          name: 'app',
          state: POD_CONSTANTS.running,
          lastState: {},
          ready: true,
          restartCount: 0,
          image,
          imageID: `registry.example/${app}@sha256:${tpl.repeat(7).slice(0, 64)}`,
          containerID: `containerd://${hash(i).repeat(7).slice(0, 64)}`,
          started: true,
          volumeMounts: [
            {
              name: vol,
              mountPath: '/var/run/secrets/kubernetes.io/serviceaccount',
              readOnly: true,
              recursiveReadOnly: 'Disabled',
            },
          ],
        },
      ],
    },
  };
}

const lastApplied = (o: Record<string, unknown>): string => JSON.stringify(o);

/** A ClusterIP Service applied with kubectl (so it carries the last-applied annotation). */
export function service(ns: string, app: string, clusterIp: string): KubeObject {
  const spec = { selector: { app }, ports: [{ name: 'http', port: 80, protocol: 'TCP', targetPort: 'http' }] };
  const applied = { apiVersion: 'v1', kind: 'Service', metadata: { name: app, namespace: ns, labels: { app } }, spec };
  return {
    kind: 'Service',
    metadata: {
      name: app,
      namespace: ns,
      labels: { app },
      annotations: { 'kubectl.kubernetes.io/last-applied-configuration': lastApplied(applied) },
      managedFields: [
        {
          manager: 'kubectl-client-side-apply',
          operation: 'Update',
          apiVersion: 'v1',
          time: T,
          fieldsType: 'FieldsV1',
          fieldsV1: {
            'f:metadata': {
              'f:annotations': { '.': {}, 'f:kubectl.kubernetes.io/last-applied-configuration': {} },
              'f:labels': { '.': {}, 'f:app': {} },
            },
            'f:spec': {
              'f:internalTrafficPolicy': {},
              'f:ports': {},
              'f:selector': {},
              'f:sessionAffinity': {},
              'f:type': {},
            },
          },
        },
      ],
    },
    spec: {
      ...spec,
      clusterIP: clusterIp,
      clusterIPs: [clusterIp],
      type: 'ClusterIP',
      sessionAffinity: 'None',
      ipFamilies: ['IPv4'],
      ipFamilyPolicy: 'SingleStack',
      internalTrafficPolicy: 'Cluster',
    },
    status: { loadBalancer: {} },
  };
}

export interface EndpointOf {
  ip: string;
  node: string;
  pod: string;
  uid?: string;
}

/** The EndpointSlice the endpointslice controller writes for a Service. */
export function endpointSlice(ns: string, app: string, i: number, endpoints: EndpointOf[]): KubeObject {
  return {
    kind: 'EndpointSlice',
    metadata: {
      name: `${app}-${hash(i).slice(0, 5)}`,
      namespace: ns,
      generateName: `${app}-`,
      labels: {
        app,
        'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io',
        'kubernetes.io/service-name': app,
      },
      annotations: { 'endpoints.kubernetes.io/last-change-trigger-time': T },
      ownerReferences: [
        {
          apiVersion: 'v1',
          kind: 'Service',
          name: app,
          uid: `svc-${ns}-${app}`,
          controller: true,
          blockOwnerDeletion: true,
        },
      ],
      managedFields: [
        {
          manager: 'kube-controller-manager',
          operation: 'Update',
          apiVersion: 'discovery.k8s.io/v1',
          time: T,
          fieldsType: 'FieldsV1',
          fieldsV1: {
            'f:addressType': {},
            'f:endpoints': {},
            'f:metadata': { 'f:annotations': {}, 'f:generateName': {}, 'f:labels': {}, 'f:ownerReferences': {} },
            'f:ports': {},
          },
        },
      ],
    },
    addressType: 'IPv4',
    endpoints: endpoints.map((e, k) => ({
      addresses: [e.ip],
      conditions: { ready: true, serving: true, terminating: false },
      nodeName: e.node,
      targetRef: { kind: 'Pod', namespace: ns, name: e.pod, uid: e.uid ?? `pod-${hash(k)}` },
      zone: ZONES[k % 3],
    })),
    ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
  };
}

/** The policies of one namespace, applied with kubectl: a mix of the shapes clusters use. */
export function namespacePolicies(ns: string, count: number, apps: number): KubeObject[] {
  const specs: Array<{ name: string; spec: Record<string, unknown> }> = [
    { name: 'default-deny-ingress', spec: { podSelector: {}, policyTypes: ['Ingress'] } },
    {
      name: 'allow-same-namespace',
      spec: { podSelector: {}, policyTypes: ['Ingress'], ingress: [{ from: [{ podSelector: {} }] }] },
    },
    {
      name: 'allow-dns-egress',
      spec: {
        podSelector: {},
        policyTypes: ['Egress'],
        egress: [
          {
            to: [
              {
                namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'ns-0' } },
                podSelector: { matchLabels: { app: 'app-0' } },
              },
            ],
            ports: [
              { port: 53, protocol: 'UDP' },
              { port: 53, protocol: 'TCP' },
            ],
          },
          { to: [{ podSelector: {} }] },
        ],
      },
    },
  ];
  for (let k = 0; specs.length < count; k++) {
    const app = `app-${k % apps}`;
    specs.push({
      name: `allow-${app}-from-frontends-${k}`,
      spec: {
        podSelector: { matchLabels: { app } },
        policyTypes: ['Ingress'],
        ingress: [
          {
            from: [
              { namespaceSelector: { matchLabels: { team: 't1' } }, podSelector: { matchLabels: { app: 'app-0' } } },
              { podSelector: { matchExpressions: [{ key: 'app', operator: 'In', values: ['app-1', 'app-2'] }] } },
            ],
            ports: [{ port: 'http', protocol: 'TCP' }],
          },
        ],
      },
    });
  }
  return specs.slice(0, count).map(({ name, spec }) => {
    const applied = {
      apiVersion: 'networking.k8s.io/v1',
      kind: 'NetworkPolicy',
      metadata: { name, namespace: ns },
      spec,
    };
    return {
      kind: 'NetworkPolicy',
      metadata: {
        name,
        namespace: ns,
        generation: 1,
        annotations: { 'kubectl.kubernetes.io/last-applied-configuration': lastApplied(applied) },
        managedFields: [
          {
            manager: 'kubectl-client-side-apply',
            operation: 'Update',
            apiVersion: 'networking.k8s.io/v1',
            time: T,
            fieldsType: 'FieldsV1',
            fieldsV1: {
              'f:metadata': { 'f:annotations': {} },
              'f:spec': { 'f:ingress': {}, 'f:egress': {}, 'f:podSelector': {}, 'f:policyTypes': {} },
            },
          },
        ],
      },
      spec,
    };
  });
}

export interface Cluster {
  /** Every Pod as created (with uid and resourceVersion from the server). */
  pods: KubeObject[];
  /** Objects created, by kind. */
  counts: Record<string, number>;
}

/**
 * Creates the whole cluster through `create` (the test API server's): nodes, namespaces, pods
 * (the first `localPods` on node-0, the rest spread over the other nodes), policies, Services
 * and one EndpointSlice per Service.
 */
export function populateCluster(create: (o: KubeObject) => KubeObject, s: ClusterShape): Cluster {
  const counts: Record<string, number> = {};
  const add = (o: KubeObject): KubeObject => {
    counts[o.kind!] = (counts[o.kind!] ?? 0) + 1;
    return create(o);
  };
  for (let n = 0; n < s.nodes; n++) add(kubeletNode(n));
  const onNode = new Array<number>(s.nodes).fill(0);
  const pods: KubeObject[] = [];
  let g = 0;
  let svc = 0;
  for (let a = 0; a < s.namespaces; a++) {
    const ns = `ns-${a}`;
    add({
      kind: 'Namespace',
      metadata: { name: ns, labels: { 'kubernetes.io/metadata.name': ns, team: `t${a % 10}` } },
    });
    const members = new Map<string, EndpointOf[]>();
    for (let p = 0; p < s.podsPerNs; p++, g++) {
      const n = g < s.localPods ? 0 : 1 + (g % (s.nodes - 1));
      const slot = onNode[n]!++;
      const ip = `10.${64 + (n >> 8)}.${n & 255}.${slot + 2}`;
      const app = `app-${p % s.appsPerNs}`;
      const pod = add(kubeletPod(ns, g, `node-${n}`, nodeIp(n), ip, app));
      pods.push(pod);
      const list = members.get(app) ?? [];
      list.push({ ip, node: `node-${n}`, pod: pod.metadata.name, uid: pod.metadata.uid });
      members.set(app, list);
    }
    for (const np of namespacePolicies(ns, s.policiesPerNs, s.appsPerNs)) add(np);
    for (let k = 0; k < s.servicesPerNs; k++, svc++) {
      const app = `app-${k % s.appsPerNs}`;
      add(service(ns, app, `10.96.${svc >> 8}.${svc & 255}`));
      add(endpointSlice(ns, app, svc, members.get(app) ?? []));
    }
  }
  return { pods, counts };
}
