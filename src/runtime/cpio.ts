// Writes a cpio "newc" archive, the format the kernel unpacks as an initramfs. Written here rather than with the
// cpio tool so that device nodes (/dev/console) can be included without root.

export interface CpioEntry {
  name: string;
  mode: number; // including the file type bits
  data?: Buffer;
  rdevMajor?: number;
  rdevMinor?: number;
}

export const S_IFDIR = 0o040000;
export const S_IFREG = 0o100000;
export const S_IFLNK = 0o120000;
export const S_IFCHR = 0o020000;

const pad4 = (n: number) => (4 - (n % 4)) % 4;
const hex8 = (n: number) => n.toString(16).padStart(8, '0');

export function cpioNewc(entries: CpioEntry[]): Buffer {
  const parts: Buffer[] = [];
  let ino = 1;
  const add = (e: CpioEntry) => {
    const data = e.data ?? Buffer.alloc(0);
    const name = Buffer.from(e.name + '\0');
    const isDir = (e.mode & 0o170000) === S_IFDIR;
    const header =
      '070701' +
      [ino++, e.mode, 0, 0, isDir ? 2 : 1, 0, data.length, 0, 0, e.rdevMajor ?? 0, e.rdevMinor ?? 0, name.length, 0]
        .map(hex8)
        .join('');
    parts.push(Buffer.from(header, 'ascii'), name, Buffer.alloc(pad4(110 + name.length)), data, Buffer.alloc(pad4(data.length)));
  };
  for (const e of entries) add(e);
  add({ name: 'TRAILER!!!', mode: 0 });
  return Buffer.concat(parts);
}
