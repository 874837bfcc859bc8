// MSRP stack entry point (docs/msrp-stack.md).
export * from './types.js';
export * from './errors.js';
export * from './parser.js';
export * from './serializer.js';
export * from './headers.js';
export * from './uri.js';
export * from './transactions.js';
export * from './connection.js';
export * from './endpoint.js';
