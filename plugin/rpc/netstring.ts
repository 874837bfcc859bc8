/** The netstring codec is wire/netstring.ts; this name stays for the modules that import it here. */
export { NetstringDecoder, encodeNetstring, netstringText } from '../../wire/netstring.js';
