// What a project file reaches outside its folder, and approvals of it: pure logic over files in a temp folder.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadProject } from '../../src/spec/load.js';
import { reachParts, describePart } from '../../src/spec/reach.js';
import { approve, requireTrust, revoke, trustState } from '../../src/reconciler/trust.js';

let top: string;
let home: string;

function project(yaml: string, env: Record<string, string> = {}) {
  const dir = fs.mkdtempSync(path.join(top, 'p-'));
  fs.mkdirSync(path.join(dir, 'data'));
  fs.mkdirSync(path.join(dir, 'rootfs'));
  fs.writeFileSync(path.join(dir, 'token'), 'x');
  fs.symlinkSync('/etc', path.join(dir, 'escape'));
  fs.writeFileSync(path.join(dir, 'boxlite.yaml'), yaml);
  return loadProject(path.join(dir, 'boxlite.yaml'), { env });
}

beforeAll(() => {
  top = fs.mkdtempSync(path.join(os.tmpdir(), 'boxlite-trust-unit-'));
  home = path.join(top, 'home');
});
afterAll(() => fs.rmSync(top, { recursive: true, force: true }));

const SELF = `name: self
boxes:
  a:
    image: ./rootfs
    volumes: ["./data:/data", "v:/v"]
    ports: ["8080:80", "127.0.0.2:8081:81"]
    env: {MODE: "\${MODE:-dev}"}
    secrets:
      T: {file: ./token, hosts: [api.example.com]}
volumes:
  v: {}
`;

describe('what a project reaches', () => {
  it('is nothing for a project that keeps to its folder, volumes and loopback ports', () => {
    expect(reachParts(project(SELF))).toEqual([]);
  });

  it('names each part outside: links out, host paths, host secrets and variables, open ports', () => {
    const spec = project(
      `name: out
boxes:
  a:
    image: ./escape
    volumes: ["./escape:/e", "/var/log:/l:ro"]
    ports: ["0.0.0.0:8080:80"]
    env: {K: "\${AWS_KEY}", D: "\${UNSET:-d}"}
    secrets:
      T: {env: GH_TOKEN, hosts: [api.github.com]}
      F: {file: /etc/hostname, hosts: [x.example.com]}
`,
      { AWS_KEY: 'k', GH_TOKEN: 'g' },
    );
    expect(reachParts(spec).map(describePart)).toEqual([
      "a: env.K → the host's variable AWS_KEY",
      `a: image → host folder /etc (by the link ${spec.dir}/escape) (read, as the box's root)`,
      'a: ports[0] → port 8080/tcp open on every address of the host',
      "a: secrets.F → host file /etc/hostname (sent to x.example.com)",
      "a: secrets.T → the host's variable GH_TOKEN (sent to api.github.com)",
      `a: volumes[0] → host folder /etc (by the link ${spec.dir}/escape) (read-write)`,
      'a: volumes[1] → host folder /var/log (read-only)',
    ]);
    expect(spec.boxes.a.image).toBe(path.join(spec.dir, 'escape'));
  });
});

describe('approvals', () => {
  const OUT = (more = '') => `name: ap\nboxes:\n  a:\n    image: ./rootfs\n    volumes: ["/var/log:/l:ro"${more}]\n`;

  it('are needed, recorded, narrowed freely, and widened only by a new approval', () => {
    const spec = project(OUT());
    expect(() => requireTrust(home, spec)).toThrow(/reaches outside its folder in ways not approved on this machine:\n  a: volumes\[0\] → host folder \/var\/log \(read-only\)\nread the file, then approve: boxlite trust/);
    approve(home, spec);
    expect(trustState(home, spec).approved).toBe(true);
    expect(fs.statSync(path.join(home, 'trust')).mode & 0o777).toBe(0o700);

    fs.writeFileSync(spec.file, OUT(', "/srv:/srv"'));
    const edited = loadProject(spec.file, {});
    const s = trustState(home, edited);
    expect(s.approved).toBe(false);
    expect(s.unapproved.map(describePart)).toEqual(['a: volumes[1] → host folder /srv (read-write)']);
    expect(trustState(home, edited, s.hash).approved).toBe(true); // BOXLITE_TRUST=HASH for this run
    expect(trustState(home, edited, 'f'.repeat(16)).approved).toBe(false);

    fs.writeFileSync(spec.file, `name: ap\nboxes:\n  a:\n    image: ./rootfs\n`);
    expect(trustState(home, loadProject(spec.file, {})).approved).toBe(true);
    expect(revoke(home, spec.file)).toBe(true);
    expect(trustState(home, spec).approved).toBe(false);
  });

  it('belong to one project file: the same parts in another folder are not approved', () => {
    const one = project(OUT());
    approve(home, one);
    expect(trustState(home, project(OUT())).approved).toBe(false);
  });
});
