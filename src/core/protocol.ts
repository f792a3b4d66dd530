// Constants shared by the host runtime and the guest agent (the agent bundle inlines this file).

/** Bump on any incompatible change to proto/agent.proto or to the link handshake below. */
export const PROTOCOL_VERSION = 2; // 2: the restore rides in the handshake, which acknowledges it

/** What a guest whose memory was restored must redo (agent/restore.ts), sent with the first handshake after it. */
export interface RestoredRequest {
  unixMs: number;
  entropy: Buffer;
  hostname: string;
  lanAddress?: string;
  lanMac?: string;
}

/** Number of virtio-serial ports a box exposes for agent connections: each host process holds one. */
export const AGENT_PORTS = 4;
export const AGENT_PORT_NAME_PREFIX = 'boxlite.agent.';

/** The box's log: the virtio-serial port whose bytes the host appends to a file in the box's folder (command.log),
 *  so that what a box printed can be read in any state, after a crash too. The agent alone writes to it: it reads
 *  lines from GUEST_LOG_FIFO (a project box's command writes its output there) and sends each line stamped (LOG_STAMP). */
export const LOG_PORT_NAME = 'boxlite.log';
export const GUEST_LOG_FIFO = '/dev/boxlite-log';
/** One line of the log: the time the agent read it (ISO, UTC, milliseconds), a space, the text. */
export const LOG_STAMP = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) (.*)$/;

/**
 * A virtio-serial port is one byte stream that outlives host connections, and the guest cannot always tell where
 * one host connection ended and the next began. So every connection starts with a line exchange:
 * host → `HELLO <nonce>\n` (repeated until answered), guest → `READY <nonce>\n`, then HTTP/2 (gRPC) bytes.
 * Bytes before the matching line on either side belong to an older connection and are dropped.
 */
export const LINK_HELLO = 'BOXLITE-HELLO ';
export const LINK_READY = 'BOXLITE-READY ';

/** Lines the guest init writes to the console; the host reads them to explain boot failures and exits. */
export const CONSOLE_INIT_STARTED = 'boxlite-init: started';
export const CONSOLE_ERROR_MARK = 'boxlite-init: error: ';
export const CONSOLE_CLEAN_SHUTDOWN = 'boxlite-init: clean shutdown';
export const CONSOLE_AGENT_EXITED = 'boxlite-init: agent exited';
