/**
 * RFC 3840 / RFC 3841 caller preferences: feature-parameter parsing, feature-set
 * matching, Reject-Contact / Accept-Contact processing and Request-Disposition.
 */
export * from './features.js';
export * from './match.js';
export * from './fork.js';
