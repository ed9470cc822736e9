export * from './selector.js';
export * from './compiled.js';
export * from './engine.js';
export * from './explain.js';
export * from './matrix.js';
export * from './simulate.js';
export * from './reader.js';
