// The Output stream's messages (OutputChunk in proto/agent.proto), encoded by hand: the pieces of output a message
// joins are copied once, straight into the encoding, where protobufjs would take them joined first and copy again.
// Under TCG every copy of a flood is a real share of the guest's CPU.
import type { OutputMessage } from './exec.js';

const STREAM_TAG = (1 << 3) | 0; // field 1, varint
const DATA_TAG = (2 << 3) | 2; // field 2, length-delimited

function varintLength(n: number): number {
  let len = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 128);
    len++;
  }
  return len;
}

function writeVarint(buf: Buffer, at: number, n: number): number {
  while (n >= 0x80) {
    buf[at++] = (n & 0x7f) | 0x80;
    n = Math.floor(n / 128);
  }
  buf[at++] = n;
  return at;
}

export function encodeOutputChunk(m: OutputMessage): Buffer {
  const buf = Buffer.allocUnsafe(1 + varintLength(m.stream) + 1 + varintLength(m.size) + m.size);
  let at = 0;
  buf[at++] = STREAM_TAG;
  at = writeVarint(buf, at, m.stream);
  buf[at++] = DATA_TAG;
  at = writeVarint(buf, at, m.size);
  for (const p of m.parts) at += p.copy(buf, at);
  return buf;
}
