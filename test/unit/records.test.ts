// The record primitive and the collections that must never lose or delete on doubt: concurrent updates of one
// record from separate stores, a corrupt record skipped with a message naming the file, records written before
// labels were opaque, and layer collection that keeps everything when a box's disk chain cannot be read.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { Home } from '../../src/runtime/home.js';
import { RecordStore } from '../../src/runtime/records.js';
import { collectLayers } from '../../src/runtime/layers.js';
import { checkName } from '../../src/core/names.js';
import type { BoxRecord } from '../../src/runtime/types.js';

const homes: string[] = [];
afterEach(() => {
  for (const h of homes.splice(0)) fs.rmSync(h, { recursive: true, force: true });
});

function freshHome(): Home {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'boxlite-records-'));
  homes.push(root);
  return new Home(root);
}

function record(id: string, name = id): BoxRecord {
  return {
    id,
    name,
    createdAt: new Date().toISOString(),
    source: { kind: 'disk', origin: 'test', config: { env: [], entrypoint: [], cmd: [], workingDir: '', user: '' } },
    options: { cpus: 1, memoryMib: 128, diskSizeMib: 64, env: {}, workingDir: '', user: '', network: 'none', ports: [], dns: [] },
    state: 'created',
  };
}

function newBox(home: Home, rec: BoxRecord, store: RecordStore): void {
  fs.mkdirSync(home.boxDir(rec.id), { recursive: true });
  store.create(rec);
}

describe('box records', () => {
  it('update re-reads under the record lock: changes from two stores to different fields both land', async () => {
    const home = freshHome();
    const a = new RecordStore(home, () => {});
    const b = new RecordStore(home, () => {});
    newBox(home, record('aaaaaaaaaaaa'), a);
    const slow = a.update('aaaaaaaaaaaa', (r) => {
      // While this change holds the lock, the other store's update waits, then sees this one's result.
      const until = Date.now() + 100;
      while (Date.now() < until);
      return { ...r, state: 'running' };
    });
    const other = b.update('aaaaaaaaaaaa', (r) => ({ ...r, label: { note: 'kept' } }));
    await Promise.all([slow, other]);
    const r = a.get('aaaaaaaaaaaa');
    expect(r.state).toBe('running');
    expect(r.label).toEqual({ note: 'kept' });
    // Records are private to the user: they can hold environment values.
    expect(fs.statSync(a.path('aaaaaaaaaaaa')).mode & 0o777).toBe(0o600);
  });

  it('a corrupt record is skipped with a message naming the file; the other boxes stay listed', () => {
    const home = freshHome();
    const said: string[] = [];
    const store = new RecordStore(home, (m) => said.push(m));
    newBox(home, record('good00000000', 'good'), store);
    newBox(home, record('bad000000000', 'bad'), store);
    fs.writeFileSync(store.path('bad000000000'), '{"id": "bad000000000", "name": ');
    expect(store.list().map((r) => r.name)).toEqual(['good']);
    expect(said).toHaveLength(1);
    expect(said[0]).toContain(`skipping box bad000000000: its record ${store.path('bad000000000')} is corrupt`);
    expect(said[0]).toContain('remove that folder, or restore the file');
    expect(() => store.find('bad')).toThrow(/no box named or with id "bad"/);
    store.list(); // said once per file
    expect(said).toHaveLength(1);
  });

  it('reads the project label of records written before labels were opaque', () => {
    const home = freshHome();
    const store = new RecordStore(home, () => {});
    const old = { ...record('old000000000'), project: { project: 'demo', box: 'web' } };
    fs.mkdirSync(home.boxDir(old.id), { recursive: true });
    fs.writeFileSync(store.path(old.id), JSON.stringify(old));
    const r = store.get(old.id) as BoxRecord & { project?: unknown };
    expect(r.label).toEqual({ project: 'demo', box: 'web' });
    expect(r.project).toBeUndefined();
  });

  it('layer collection deletes what no box reads, and nothing when a box disk chain cannot be read', async () => {
    const home = freshHome();
    const store = new RecordStore(home, () => {});
    fs.mkdirSync(home.layersDir, { recursive: true });
    const used = path.join(home.layersDir, 'used.qcow2');
    const unused = path.join(home.layersDir, 'unused.qcow2');
    for (const f of [used, unused]) execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', f, '16M']);
    newBox(home, record('box000000001'), store);
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', used, path.join(home.boxDir('box000000001'), 'disk.qcow2')]);
    // A second box whose disk chain cannot be read (its backing file is missing): nothing is known to be unused.
    newBox(home, record('box000000002', 'broken'), store);
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-u', '-b', path.join(home.root, 'gone.qcow2'), path.join(home.boxDir('box000000002'), 'disk.qcow2'), '16M']);
    const doubt = await collectLayers(home, store);
    expect(doubt.removed).toEqual([]);
    expect(doubt.kept).toContain('the disk chain of box broken could not be read');
    expect(fs.readdirSync(home.layersDir).sort()).toEqual(['unused.qcow2', 'used.qcow2']);
    fs.rmSync(home.boxDir('box000000002'), { recursive: true });
    const sure = await collectLayers(home, store);
    expect(sure.removed).toEqual([unused]);
    expect(fs.readdirSync(home.layersDir)).toEqual(['used.qcow2']);
  });
});

describe('names', () => {
  it('one rule and one message for boxes, snapshots and volumes', () => {
    expect(checkName('box', 'web-1.a_b')).toBe('web-1.a_b');
    expect(() => checkName('box', 'bad/name')).toThrow(`box name "bad/name" is invalid: use letters, digits, '_', '.', '-' (up to 63, starting with a letter or digit)`);
    expect(() => checkName('snapshot', '-x')).toThrow(`snapshot name "-x" is invalid`);
    expect(() => checkName('box', 'a'.repeat(64))).toThrow(/up to 63/);
    expect(checkName('volume', 'v'.repeat(80))).toHaveLength(80);
    expect(() => checkName('volume', 'v'.repeat(81))).toThrow(/volume name .* \(up to 80/);
  });
});

describe('home', () => {
  it('is made private to its user, and closed again when opened by hand', () => {
    const parent = fs.mkdtempSync(path.join(os.tmpdir(), 'boxlite-home-'));
    homes.push(parent);
    const fresh = new Home(path.join(parent, 'a', 'b'));
    fresh.secure();
    expect(fs.statSync(fresh.root).mode & 0o777).toBe(0o700);
    fs.chmodSync(fresh.root, 0o755);
    new Home(fresh.root).secure();
    expect(fs.statSync(fresh.root).mode & 0o777).toBe(0o700);
  });
});
