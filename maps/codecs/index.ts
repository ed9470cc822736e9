/** Every map codec's layout, for the ABI test and for tools that print map contents. */
import { flowEventLayout } from './flow-event.js';
import { endpointLayout } from './endpoint.js';
import { ipcacheKeyLayout, ipcacheLpmKeyLayout, ipcacheValueLayout } from './ipcache.js';
import { policyKeyLayout, policyValueLayout, policyRangeKeyLayout } from './policy.js';
import { ctKeyLayout, ct4KeyLayout, ctValueLayout } from './conntrack.js';
import { fragKeyLayout, fragValueLayout } from './frag.js';
import { configLayout } from './config.js';
import { counterLayout } from './counters.js';
import { SERVICE_LAYOUTS } from './service.js';
import { clockSampleLayout } from './clock.js';
import type { StructLayout } from './layout.js';

export const ALL_LAYOUTS: StructLayout[] = [
  flowEventLayout,
  endpointLayout,
  ipcacheKeyLayout,
  ipcacheLpmKeyLayout,
  ipcacheValueLayout,
  policyKeyLayout,
  policyValueLayout,
  policyRangeKeyLayout,
  ctKeyLayout,
  ct4KeyLayout,
  ctValueLayout,
  fragKeyLayout,
  fragValueLayout,
  configLayout,
  counterLayout,
  ...SERVICE_LAYOUTS,
  clockSampleLayout,
];
