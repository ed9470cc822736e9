/** What `datapath` loads only when one of its commands runs (see the preAction hook). */
export { formatDatapath, inspectDatapath } from '../../datapath/inspect.js';
