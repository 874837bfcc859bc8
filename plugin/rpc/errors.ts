/** JSON-RPC error codes and the error a method throws to answer with one (plugin/errors.ts). */
export { RpcCode } from '../errors.js';
export { RpcError } from '../../wire/errors.js';
