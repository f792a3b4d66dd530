// Profiles choose which boxes a default up acts on, as compose's do: boxes without profiles always, a box with
// profiles when one is asked for, a named box whatever its profiles; a dependency left out is an error naming the
// profile to add. Pure selection over parsed files.
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseProject } from '../../src/spec/load.js';
import { SpecError } from '../../src/spec/errors.js';
import { profilesFromEnv, selectBoxes } from '../../src/reconciler/select.js';

const file = path.join(os.tmpdir(), 'boxlite-profiles', 'boxlite.yaml');
const project = (text: string) => parseProject(text, file, { env: {} });
const chosen = (text: string, opts: Parameters<typeof selectBoxes>[1] = {}) => Object.keys(selectBoxes(project(text), opts).spec.boxes);

const SHOP = `name: shop
boxes:
  web:
    image: debian:12
    depends_on: [db]
  db:
    image: debian:12
  debug:
    image: debian:12
    profiles: [tools]
  seed:
    image: debian:12
    depends_on: [db]
    profiles: [data, tools]
`;

describe('profiles', () => {
  it('a default selection leaves out boxes with profiles, and names them as inactive', () => {
    const s = selectBoxes(project(SHOP));
    expect(Object.keys(s.spec.boxes)).toEqual(['web', 'db']);
    expect(s.inactive).toEqual(['debug', 'seed']);
    expect(s.spec.boxes.debug).toBeUndefined();
    expect(project(SHOP).boxes.seed.profiles).toEqual(['data', 'tools']);
  });

  it('a profile asked for brings its boxes; several, or *, bring more', () => {
    expect(chosen(SHOP, { profiles: ['data'] })).toEqual(['web', 'db', 'seed']);
    expect(chosen(SHOP, { profiles: ['tools'] })).toEqual(['web', 'db', 'debug', 'seed']);
    expect(chosen(SHOP, { profiles: ['*'] })).toEqual(['web', 'db', 'debug', 'seed']);
  });

  it('a box named is chosen whatever its profiles, with what it depends on', () => {
    expect(chosen(SHOP, { boxes: ['seed'] })).toEqual(['db', 'seed']);
    expect(selectBoxes(project(SHOP), { boxes: ['debug'] }).inactive).toEqual(['web', 'db', 'seed']);
  });

  it('an unknown profile is an error naming those there are, unless it came from the environment', () => {
    expect(() => selectBoxes(project(SHOP), { profiles: ['tool'] })).toThrow('no profile "tool" in boxlite.yaml: its profiles are data, tools');
    expect(chosen(SHOP, { profiles: ['tool'], lenient: true })).toEqual(['web', 'db']);
    expect(() => selectBoxes(project('boxes:\n  a:\n    image: x\n'), { profiles: ['p'] })).toThrow('no profile "p" in boxlite.yaml: no box of it has profiles');
  });

  it('a dependency a profile keeps out is an error naming the profile to add', () => {
    const text = `boxes:\n  web:\n    image: x\n    depends_on: [db]\n  db:\n    image: x\n    profiles: [data]\n`;
    expect(() => selectBoxes(project(text))).toThrow('box web depends on db, which is only in profile data: add --profile data, or take db out of its profiles');
    expect(chosen(text, { profiles: ['data'] })).toEqual(['web', 'db']);
  });

  it('a file whose every box has profiles selects nothing by default, and says how to select', () => {
    const text = `boxes:\n  a:\n    image: x\n    profiles: [one]\n  b:\n    image: x\n    profiles: [two]\n`;
    expect(() => selectBoxes(project(text))).toThrow('no box of boxlite.yaml is selected: every box has profiles and none of them was asked for (add --profile one, or name a box)');
    expect(chosen(text, { profiles: ['two'] })).toEqual(['b']);
  });

  it('profile names are checked where they are written, and BOXLITE_PROFILES is a comma list', () => {
    let err: unknown;
    try {
      project('boxes:\n  a:\n    image: x\n    profiles: ["-bad"]\n');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SpecError);
    expect((err as SpecError).problems[0]).toMatchObject({ line: 4, col: 16, path: 'boxes.a.profiles[0]' });
    expect((err as SpecError).problems[0].message).toBe(`expected a profile name of letters, digits, '_', '.' and '-' (starting with a letter or digit), got "-bad"`);
    expect(profilesFromEnv({ BOXLITE_PROFILES: ' data, tools ,' })).toEqual(['data', 'tools']);
    expect(profilesFromEnv({})).toEqual([]);
  });
});
