export * from './group.js';
export * from './common.js';
export * from './rules.js';
export * from './validation.js';
export * from './nodeippool.js';
export * from './nodeipallocation.js';
