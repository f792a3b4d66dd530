// Image figures, beside skopeo + umoci doing the same work on the same image from the same registry, in one run:
//   pull + assemble   boxlite: registry → blob store → ext4 base;  skopeo copy → OCI layout, umoci unpack → folder
//   cold / cached     empty stores / everything already stored (umoci has no cache: it unpacks again)
//   second box        create of another box from a stored image, and the bytes it wrote
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Runtime } from '../src/runtime/runtime.js';
import { debianLayout, push, startRegistry } from '../test/registry.js';

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const secs = (n: number) => `${(n / 1000).toFixed(2)} s`;

function timed(fn: () => void): number {
  const t = performance.now();
  fn();
  return performance.now() - t;
}

async function timedAsync(fn: () => Promise<unknown>): Promise<number> {
  const t = performance.now();
  await fn();
  return performance.now() - t;
}

function layerBytes(layout: string): number {
  const blob = (d: string) => path.join(layout, 'blobs/sha256', d.slice(7));
  const index = JSON.parse(fs.readFileSync(path.join(layout, 'index.json'), 'utf8'));
  const manifest = JSON.parse(fs.readFileSync(blob(index.manifests[0].digest), 'utf8'));
  return manifest.layers.reduce((s: number, l: { size: number }) => s + l.size, 0);
}

const duBytes = (p: string) => Number(execFileSync('du', ['-s', '-B1', p]).toString().split(/\s/)[0]);

export async function imageBench(mainHome: string, runs: number): Promise<[string, string][]> {
  for (const tool of ['/usr/bin/skopeo', '/usr/bin/umoci', '/usr/bin/docker-registry']) {
    if (!fs.existsSync(tool)) throw new Error(`the image benchmark needs ${tool}: apt-get install skopeo umoci docker-registry (npm test's setup installs them)`);
  }
  const layout = debianLayout();
  const reg = await startRegistry();
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'boxlite-bench-img-'));
  try {
    await push(reg, layout, 'debian:bench');
    const ref = `${reg.host}/debian:bench`;
    const newHome = () => {
      const h = fs.mkdtempSync(path.join(work, 'home-'));
      fs.symlinkSync(path.join(mainHome, 'assets'), path.join(h, 'assets'));
      return h;
    };
    const boxCold: number[] = [];
    const boxCached: number[] = [];
    const refCold: number[] = [];
    const refCached: number[] = [];
    let pullPart = 0;
    let home = '';
    for (let i = 0; i < runs; i++) {
      home = newHome();
      const rt = new Runtime({ home, say: () => {} });
      let t = performance.now();
      const rec = await rt.images.pull(ref);
      pullPart = performance.now() - t;
      await rt.images.base(rec);
      boxCold.push(performance.now() - t);
      boxCached.push(await timedAsync(async () => rt.images.base(await rt.images.pull(ref))));
      rt.close();
      if (i < runs - 1) fs.rmSync(home, { recursive: true, force: true });

      const oci = path.join(work, `oci-${i}`);
      const bundle = path.join(work, `bundle-${i}`);
      const copy = () => execFileSync('skopeo', ['copy', '-q', '--src-tls-verify=false', `docker://${ref}`, `oci:${oci}:bench`]);
      const unpack = (dir: string) => execFileSync('umoci', ['unpack', '--image', `${oci}:bench`, dir], { stdio: 'ignore' });
      refCold.push(timed(() => (copy(), unpack(bundle))));
      refCached.push(timed(() => (copy(), unpack(`${bundle}-again`))));
      fs.rmSync(oci, { recursive: true, force: true });
      fs.rmSync(bundle, { recursive: true, force: true });
      fs.rmSync(`${bundle}-again`, { recursive: true, force: true });
    }

    // A second box of the stored image: its disk is an empty overlay.
    const rt = new Runtime({ home, say: () => {} });
    await rt.create({ image: ref, name: 'first' });
    const before = duBytes(path.join(home, 'images'));
    let box2Id = '';
    const second = await timedAsync(async () => (box2Id = (await rt.create({ image: ref, name: 'second' })).id));
    const wrote = duBytes(path.join(home, 'boxes', box2Id));
    const imagesGrew = duBytes(path.join(home, 'images')) - before;
    const base = rt.images.existingBase(rt.images.get(ref))!;
    rt.close();

    const bc = median(boxCold);
    const rc = median(refCold);
    const bw = median(boxCached);
    const rw = median(refCached);
    return [
      ['image: Debian bookworm + python3 (one gzip layer → ext4 base)', `${(layerBytes(layout) / (1 << 20)).toFixed(0)} MiB → ${base.sizeMib} MiB`],
      ['pull + assemble, cold: boxlite (median)', `${secs(bc)}  (pull ${secs(pullPart)})`],
      ['pull + unpack, cold: skopeo copy + umoci unpack (median)', secs(rc)],
      ['  ratio boxlite / skopeo+umoci, cold', `${(bc / rc).toFixed(2)}`],
      ['pull + assemble, cached: boxlite (median)', secs(bw)],
      ['pull + unpack, cached: skopeo copy + umoci unpack (median)', secs(rw)],
      ['  ratio boxlite / skopeo+umoci, cached', `${(bw / rw).toFixed(3)}`],
      ['create a second box from the stored image', `${(second).toFixed(0)} ms, ${(wrote / 1024).toFixed(0)} KiB written, image data copied: ${imagesGrew} bytes`],
    ];
  } finally {
    await reg.stop();
    fs.rmSync(work, { recursive: true, force: true });
  }
}
