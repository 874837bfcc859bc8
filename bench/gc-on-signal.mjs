// Preloaded into each relay by `npm run bench:history:instructions` (node --expose-gc
// --import): SIGUSR2 runs a full garbage collection, so every measured window starts from
// a collected heap, and a major collection left over from the previous window is not
// counted in this one. Plain JavaScript: it is loaded before tsx.
import process from 'node:process';

const gc = globalThis.gc;
if (typeof gc === 'function') process.on('SIGUSR2', () => gc());
