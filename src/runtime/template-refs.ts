// What the warm-start templates (templates.ts) hold on to, read straight from home/templates/*.json: the layer
// and the state file of each. A leaf, so that the collectors of layers and states can honour templates without
// depending on how templates are made.
import * as fs from 'node:fs';
import * as path from 'node:path';

export const templatesDir = (homeRoot: string) => path.join(homeRoot, 'templates');

export function templateRefs(homeRoot: string): { layer: string; state: string }[] {
  const dir = templatesDir(homeRoot);
  let names: string[];
  try {
    names = fs.readdirSync(dir).filter((n) => n.endsWith('.json'));
  } catch {
    return [];
  }
  const out: { layer: string; state: string }[] = [];
  for (const n of names) {
    try {
      const t = JSON.parse(fs.readFileSync(path.join(dir, n), 'utf8'));
      if (typeof t?.layer === 'string' && typeof t?.state?.file === 'string') out.push({ layer: path.resolve(t.layer), state: path.resolve(t.state.file) });
    } catch {} // half written or damaged: what it kept is collected, and the template is made again
  }
  return out;
}
