/** `weir agent` settings: defaults < config file < flags, and errors that name the setting. */
import { DEFAULT_CONFIG, parseConfigText, resolveConfig } from '../../agent/node/config.js';

describe('agent configuration', () => {
  it('takes defaults, then the file, then flags', () => {
    const file = parseConfigText('pinRoot: /sys/fs/bpf/a\nhealthPort: 1234\nclusterPodCIDRs: [10.0.0.0/8]\n');
    const cfg = resolveConfig(file, {
      nodeName: 'n1',
      healthPort: '4321',
      hostAccess: 'false',
      clusterPodCIDRs: '10.1.0.0/16,fd00::/64',
    });
    expect(cfg).toEqual({
      ...DEFAULT_CONFIG,
      nodeName: 'n1',
      pinRoot: '/sys/fs/bpf/a',
      healthPort: 4321,
      hostAccess: false,
      clusterPodCIDRs: ['10.1.0.0/16', 'fd00::/64'],
    });
  });

  it('has allowed flows on by default, switched off by the file key or the flag', () => {
    expect(resolveConfig({}, { nodeName: 'n' }).allowedFlows).toBe(true);
    expect(resolveConfig(parseConfigText('allowedFlows: false\n'), { nodeName: 'n' }).allowedFlows).toBe(false);
    expect(resolveConfig({}, { nodeName: 'n', allowedFlows: 'false' }).allowedFlows).toBe(false);
  });

  it('has per-pod metrics off by default, switched on by the file key or the flag', () => {
    expect(resolveConfig({}, { nodeName: 'n' })).toMatchObject({ podMetrics: false, podMetricsMaxPods: 100 });
    const file = parseConfigText('podMetrics: true\npodMetricsMaxPods: 20\n');
    expect(resolveConfig(file, { nodeName: 'n' })).toMatchObject({ podMetrics: true, podMetricsMaxPods: 20 });
    expect(resolveConfig(file, { nodeName: 'n', podMetrics: 'false' }).podMetrics).toBe(false);
    expect(resolveConfig({}, { nodeName: 'n', podMetrics: 'true' }).podMetrics).toBe(true);
    expect(() => parseConfigText('podMetrics: yes please\n')).toThrow(/podMetrics must be true or false/);
  });

  it('takes the NodePort interfaces as a list from the file or a comma list from the flag; none means found from the Node', () => {
    expect(resolveConfig({}, { nodeName: 'n' }).nodePortInterfaces).toEqual([]);
    const file = parseConfigText('nodePortInterfaces: [eth0, ens5]\n');
    expect(resolveConfig(file, { nodeName: 'n' }).nodePortInterfaces).toEqual(['eth0', 'ens5']);
    expect(resolveConfig(file, { nodeName: 'n', nodePortInterfaces: 'bond0,eth1' }).nodePortInterfaces).toEqual([
      'bond0',
      'eth1',
    ]);
    expect(() => parseConfigText('nodePortInterfaces: [eth0/1]\n')).toThrow(
      /nodePortInterfaces must be a list of interface names like eth0,ens5/,
    );
    expect(() => resolveConfig({}, { nodeName: 'n', nodePortInterfaces: 'an-interface-name-too-long' })).toThrow(
      /--nodeport-interfaces: nodePortInterfaces must be a list of interface names/,
    );
  });

  it('names the setting and what it expects', () => {
    expect(() => parseConfigText('metricsPort: 70000\n', 'cm.yaml')).toThrow(
      'cm.yaml: metricsPort must be a port number (0-65535), got 70000',
    );
    expect(() => parseConfigText('clusterPodCIDRs: [10.0.0.0/33]\n')).toThrow(
      /clusterPodCIDRs must be a list of CIDRs/,
    );
    expect(() => parseConfigText('logLevel: loud\n')).toThrow(/logLevel must be one of error, warn, info, debug/);
    expect(() => parseConfigText('runDir: run\n')).toThrow(/runDir must be an absolute path/);
    expect(() => parseConfigText('- a\n')).toThrow(/expected a mapping/);
    expect(() => resolveConfig({}, {})).toThrow(/node name is required: pass --node-name or set NODE_NAME/);
    expect(() => resolveConfig({}, { nodeName: 'n', watchTimeoutSeconds: '0' })).toThrow(
      /--watch-timeout-seconds: watchTimeoutSeconds must be a positive integer/,
    );
  });
});
