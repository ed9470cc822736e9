/** What `lab` loads only when one of its commands runs (see the preAction hook). */
export { resolveLabConfig } from '../../lab/config.js';
export { readState, teardownLab } from '../../lab/runtime.js';
export { requestedMetricsPort } from '../../lab/observe.js';
export { controlSocketPath, startLabService } from '../../lab/service.js';
export { callControl } from '../../control/client.js';
export { loadCheckedManifests, loadManifests } from '../../store/index.js';
export { probePods, probeService, toMatrix } from '../../lab/probe.js';
export { formatTruthTable } from '../../policy/matrix.js';
export { formatTable } from '../../lab/views.js';
