export * from './labels.js';
export * from './allocator.js';
