// Resolves the `user` of an exec request against the box's own /etc/passwd and /etc/group.
import * as fs from 'node:fs';

export interface ResolvedUser { uid: number; gid: number; home: string; name: string }

function readTable(path: string): string[][] {
  try {
    return fs.readFileSync(path, 'utf8').split('\n').filter((l) => l && !l.startsWith('#')).map((l) => l.split(':'));
  } catch {
    return [];
  }
}

export function resolveUser(spec: string): ResolvedUser {
  if (!spec) spec = 'root';
  const [userPart, groupPart] = spec.split(':', 2);
  const passwd = readTable('/etc/passwd');
  const byName = passwd.find((p) => p[0] === userPart);
  const byId = /^\d+$/.test(userPart) ? passwd.find((p) => p[2] === userPart) : undefined;
  const entry = byName ?? byId;
  let uid: number, gid: number, home: string, name: string;
  if (entry) {
    [name, uid, gid, home] = [entry[0], Number(entry[2]), Number(entry[3]), entry[5] || '/'];
  } else if (/^\d+$/.test(userPart)) {
    // Like docker: a numeric uid needs no passwd entry.
    [name, uid, gid, home] = [userPart, Number(userPart), Number(userPart), '/'];
  } else {
    throw new Error(`user "${userPart}" not found in the box's /etc/passwd; use a uid (e.g. 1000) or add the user`);
  }
  if (groupPart !== undefined) {
    if (/^\d+$/.test(groupPart)) gid = Number(groupPart);
    else {
      const g = readTable('/etc/group').find((r) => r[0] === groupPart);
      if (!g) throw new Error(`group "${groupPart}" not found in the box's /etc/group`);
      gid = Number(g[2]);
    }
  }
  return { uid, gid, home, name };
}
