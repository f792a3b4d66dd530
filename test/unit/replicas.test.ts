// `replicas: N`: the file expands to boxes NAME-1 … NAME-N; dependants depend on all of them; what several boxes
// cannot share is refused where it is written; scaling down plans the removal of the replicas beyond N; one
// approval covers a replicated box at any scale. Pure: parsed files and plans, no box.
import { describe, expect, it } from 'vitest';
import { parseProject } from '../../src/spec/load.js';
import { SpecError } from '../../src/spec/errors.js';
import { hashGroups, plan, type ObservedBox } from '../../src/reconciler/plan.js';
import { reachHash, reachParts } from '../../src/spec/reach.js';
import { selectBoxes } from '../../src/reconciler/select.js';
import type { BoxSpec } from '../../src/spec/types.js';

const FILE = '/srv/demo/boxlite.yaml';
const project = (yaml: string) => parseProject(`name: demo\n${yaml}`, FILE, { env: {} });
const WEB = (n: number, extra = '') => `boxes:\n  web:\n    image: debian:12\n    healthcheck: {test: "true"}\n    replicas: ${n}\n${extra}  lb:\n    image: debian:12\n    depends_on: {web: {condition: healthy}}\n`;

function problems(yaml: string): string[] {
  try {
    project(yaml);
  } catch (e) {
    if (!(e instanceof SpecError)) throw e;
    return e.problems.map((p) => `${p.line}:${p.col} ${p.path}: ${p.message}`);
  }
  throw new Error('the file was accepted');
}

const observed = (spec: BoxSpec): ObservedBox => ({
  id: `id-${spec.name}`,
  name: `demo.${spec.name}`,
  state: 'running',
  createdAt: '2026-11-23T09:00:00Z',
  label: { project: 'demo', box: spec.name, file: FILE, applied: spec as never, hash: hashGroups(spec), setup: 'done' },
  snapshots: [],
});

describe('replicas', () => {
  it('expand to NAME-1 … NAME-N in place of the box, and a dependant depends on every replica', () => {
    const p = project(WEB(3));
    expect(Object.keys(p.boxes)).toEqual(['web-1', 'web-2', 'web-3', 'lb']);
    expect(p.boxes['web-2']).toMatchObject({ name: 'web-2', replicaOf: 'web', image: 'debian:12' });
    expect(p.boxes.lb.dependsOn).toEqual({ 'web-1': 'healthy', 'web-2': 'healthy', 'web-3': 'healthy' });
    expect(p.replicas).toEqual({ web: 3 });
    expect(Object.keys(project(WEB(0)).boxes)).toEqual(['lb']);
    // A box named as Object.prototype's keys is a box like any other, not taken for a replicated one.
    const odd = project('boxes:\n  constructor:\n    image: x\n  web:\n    image: x\n    replicas: 2\n    depends_on: [constructor]\n');
    expect(Object.keys(odd.boxes)).toEqual(['constructor', 'web-1', 'web-2']);
    expect(odd.boxes['web-2'].dependsOn).toEqual({ constructor: 'started' });
    expect(Object.keys(selectBoxes(odd, { boxes: ['constructor'] }).spec.boxes)).toEqual(['constructor']);
    expect(() => selectBoxes(odd, { boxes: ['toString'] })).toThrow('no box "toString" in boxlite.yaml');
  });

  it('refuse a fixed host port, a named volume, and a replica name another box has', () => {
    expect(problems(WEB(2, '    ports: ["8080:80"]\n'))).toEqual([
      `7:13 boxes.web.ports[0]: box web has 2 replicas, which cannot share a fixed host port: give only the box's port ("80") for a host port chosen at each start`,
    ]);
    expect(Object.keys(project(WEB(1, '    ports: ["8080:80"]\n')).boxes)).toEqual(['web-1', 'lb']); // one replica may
    expect(problems(`volumes:\n  data:\n${WEB(2, '    volumes: ["data:/data"]\n')}`)).toEqual([
      "9:15 boxes.web.volumes[0]: box web has 2 replicas, and volume data is a disk that belongs to one running box at a time: share a host folder instead, or keep the data in each replica's own disk",
    ]);
    expect(problems(`${WEB(2)}  web-2:\n    image: debian:12\n`)).toEqual(['6:15 boxes.web.replicas: replica web-2 of box web has the name of another box: rename one of them']);
    expect(problems(WEB(51))).toEqual(['6:15 boxes.web.replicas: expected a number of at most 50, got 51']);
  });

  it('scaling down plans the removal of the replicas beyond N; scaling up creates the new ones', () => {
    const was = project(WEB(3));
    const records = Object.values(was.boxes).map(observed);
    const down = plan(project(WEB(1)), records, []);
    expect(down.boxes.filter((b) => b.action !== 'noop' && b.box !== 'lb').map((b) => `${b.box}:${b.action} ${b.notes.join('')}`)).toEqual(['web-2:remove web is scaled to 1', 'web-3:remove web is scaled to 1']);
    const up = plan(project(WEB(4)), records, []);
    expect(up.boxes.filter((b) => b.action === 'create').map((b) => b.box)).toEqual(['web-4']);
    // A box no longer declared at all is still an orphan, kept.
    expect(plan(project('boxes:\n  lb:\n    image: debian:12\n'), records, []).boxes.filter((b) => b.box.startsWith('web')).map((b) => b.action)).toEqual(['orphan', 'orphan', 'orphan']);
  });

  it('one approval covers a replicated box at any scale; up NAME selects every replica', () => {
    const folder = (n: number) => `boxes:\n  web:\n    image: debian:12\n    replicas: ${n}\n    volumes: ["/tmp:/s:ro"]\n`;
    expect(reachParts(project(folder(2))).map((p) => `${p.box} ${p.field}`)).toEqual(['web volumes[0]']);
    expect(reachHash(reachParts(project(folder(2))))).toBe(reachHash(reachParts(project(folder(5)))));
    expect(Object.keys(selectBoxes(project(WEB(2)), { boxes: ['web'] }).spec.boxes)).toEqual(['web-1', 'web-2']);
    expect(Object.keys(selectBoxes(project(WEB(2)), { boxes: ['lb'] }).spec.boxes)).toEqual(['web-1', 'web-2', 'lb']);
  });
});
