/**
 * Every coded error of the decision service, in one registry (docs/jsonrpc.md "Errors").
 * Error classes take their `code` types from here; a test checks that no code is listed
 * twice, here or against wire/errors.ts, and that docs/jsonrpc.md names each one.
 *
 * - `RpcCode`: JSON-RPC error codes the service answers with: the JSON-RPC 2.0 ones
 *   (wire/errors.ts) plus its own in the -32000..-32099 range.
 * - `ErrorCodes`: stable string codes of the service's exceptions, grouped by module.
 *   Those that reach Kamailio travel as the `data` of a -32602 answer.
 */
import { JsonRpcCode, WireErrorCode } from '../wire/errors.js';

export const RpcCode = {
  ...JsonRpcCode,
  /** XDM or the device store unavailable: Kamailio applies its fail-safe. */
  DependencyFailed: -32001,
} as const;
export type RpcCode = (typeof RpcCode)[keyof typeof RpcCode];

export const ErrorCodes = {
  /** plugin/sip/message.ts SipParseError */
  sipParse: ['SIP_EMPTY', 'SIP_BAD_START_LINE', 'SIP_BAD_HEADER', 'SIP_TOO_LARGE'],
  /** plugin/b2bua/sip/framing.ts FramingError (the B2BUA's transport closes that connection) */
  sipFraming: [
    'SIP_FRAMING_BAD_START_LINE',
    'SIP_FRAMING_HEADER_TOO_LARGE',
    'SIP_FRAMING_TOO_LARGE',
    'SIP_FRAMING_NO_CONTENT_LENGTH',
    'SIP_FRAMING_BAD_CONTENT_LENGTH',
    'SIP_FRAMING_CONFLICTING_CONTENT_LENGTH',
  ],
  /** plugin/sip/register.ts RegisterError */
  register: [
    'REGISTER_NOT_A_REGISTER',
    'REGISTER_BAD_TO',
    'REGISTER_BAD_CONTACT',
    'REGISTER_BAD_CSEQ',
    'REGISTER_MISSING_HEADER',
  ],
  /** plugin/devices/store.ts DeviceLimitError */
  deviceLimit: ['REGISTER_TOO_MANY_CONTACTS'],
  /** plugin/xdm/xml.ts XmlError */
  xml: ['XML_NOT_WELL_FORMED', 'XML_DTD_FORBIDDEN', 'XML_TOO_LARGE'],
  /** plugin/xdm/documents.ts XdmDocumentError */
  xdmDocument: ['XDM_WRONG_SCHEMA'],
  /** plugin/xdm/source.ts XdmUnavailableError (answered -32001) */
  xdmUnavailable: ['XDM_UNAVAILABLE'],
  /** plugin/xdm/store.ts XcapRejectError (an HTTP 4xx of the XCAP server) */
  xcapReject: ['XCAP_NOT_WELL_FORMED', 'XCAP_DTD_FORBIDDEN', 'XCAP_TOO_LARGE', 'XCAP_SCHEMA'],
  /** plugin/xdm/client.ts XcapClientError */
  xcapClient: ['XCAP_FETCH_FAILED'],
  /** wire/config.ts ConfigError (plugin/config/load.ts): exit code 2 at startup */
  config: [WireErrorCode.ConfigInvalid],
} as const;

export type SipParseErrorCode = (typeof ErrorCodes.sipParse)[number];
export type SipFramingErrorCode = (typeof ErrorCodes.sipFraming)[number];
export type RegisterErrorCode = (typeof ErrorCodes.register)[number];
export type DeviceLimitErrorCode = (typeof ErrorCodes.deviceLimit)[number];
export type XmlErrorCode = (typeof ErrorCodes.xml)[number];
export type XdmDocumentErrorCode = (typeof ErrorCodes.xdmDocument)[number];
export type XdmUnavailableErrorCode = (typeof ErrorCodes.xdmUnavailable)[number];
export type XcapRejectCode = (typeof ErrorCodes.xcapReject)[number];
export type XcapClientErrorCode = (typeof ErrorCodes.xcapClient)[number];
/** Any string code the service raises. */
export type ServiceErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes][number];
