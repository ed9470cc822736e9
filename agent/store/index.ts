export * from './types.js';
export * from './convert.js';
export * from './manifests.js';
export * from './store.js';
export * from './validate.js';
