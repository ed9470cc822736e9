import { readFileSync } from 'node:fs';

// Placeholder until the codecs land: the ABI header exists and defines the flow event.
describe('ABI header', () => {
  it('defines the flow event record', () => {
    const h = readFileSync('bpf/weir_abi.h', 'utf8');
    expect(h).toMatch(/struct weir_flow_event \{/);
  });
});
