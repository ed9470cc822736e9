export * from './cidr.js';
export * from './ipcache.js';
