/** weir as a dataplane of the side-by-side bench. */
import type { Dataplane } from './dataplane.js';
import type { Topology } from './topology.js';

export interface WeirOptions {
  topo: Topology;
  targetPod: string;
  pinRoot: string;
}

/** Returns weir's dataplane, or a note saying why it is not part of this run. */
export async function weirDataplane(opts: WeirOptions): Promise<{ plane?: Dataplane; note: string }> {
  void opts;
  return Promise.resolve({ note: '_weir is not measured in this run: its datapath is not built into this tree yet._' });
}
