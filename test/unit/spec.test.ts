// boxlite.yaml parsing: every malformed file is reported at the right line and column, with its key path and a
// message that says what was expected; valid files normalise to the typed project.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseProject, loadProject } from '../../src/spec/load.js';
import { SpecError } from '../../src/spec/errors.js';
import { parseDurationMs, parseSizeMib } from '../../src/core/units.js';
import { interpolate, parseDotenv } from '../../src/spec/interpolate.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'boxlite-spec-'));
fs.mkdirSync(path.join(dir, 'src'));
fs.writeFileSync(path.join(dir, 'notes.txt'), 'x');
const file = path.join(dir, 'boxlite.yaml');

function problems(text: string, env: Record<string, string> = {}) {
  try {
    parseProject(text, file, { env });
  } catch (e) {
    if (!(e instanceof SpecError)) throw e;
    return e.problems.map((p) => `${p.line}:${p.col} ${p.path ? `${p.path}: ` : ''}${p.message}`);
  }
  throw new Error('the file was accepted');
}

const RULES = 'accepted forms: "api.example.com", "*.example.com", "203.0.113.7", "203.0.113.0/24", each optionally with ":443" or ":53/udp"';
const box = (extra: string) => `boxes:\n  web:\n    image: debian:12\n${extra}`;

// [what, file text, the problems expected: "line:col path: message"]
const malformed: [string, string, string[]][] = [
  ['an empty file', '', ['1:1 the file is empty: declare at least one box under "boxes:"']],
  ['no boxes', 'name: demo\n', ['1:1 missing required key "boxes"']],
  ['an empty boxes map', 'boxes: {}\n', ['1:8 boxes: declare at least one box']],
  ['a misspelt top-level key', 'boxs:\n  web: {image: x}\n', ['1:1 boxs: unknown key "boxs" (did you mean "boxes"?)']],
  ['a misspelt box key', 'boxes:\n  web:\n    imgae: debian:12\n', ['3:5 boxes.web.imgae: unknown key "imgae" (did you mean "image"?)']],
  ['an unknown box key far from any', box('    colour: red\n'), ['4:5 boxes.web.colour: unknown key "colour"; allowed here: image, cpus, memory, disk, env, working_dir, user, network, secrets, dns, volumes, ports, setup, command, healthcheck, pause_after, restart, depends_on, replicas, profiles, snapshots']],
  ['a box without image', 'boxes:\n  web:\n    cpus: 2\n', ['3:5 boxes.web: missing required key "image"']],
  ['a box that is a string', 'boxes:\n  web: debian:12\n', ['2:8 boxes.web: expected a mapping, got "debian:12"']],
  ['memory in words', box('    memory: lots\n'), ['4:13 boxes.web.memory: expected a size such as 512MiB, 2GiB or 10G (a bare number is MiB), got "lots"']],
  ['too little memory', box('    memory: 100MiB\n'), ['4:13 boxes.web.memory: a box needs at least 128MiB of memory (got 100MiB)']],
  ['a tiny disk', box('    disk: 10MiB\n'), ['4:11 boxes.web.disk: a disk needs at least 64MiB (got 10MiB)']],
  ['a size in fractions of a MiB', box('    memory: 0.3MiB\n'), ['4:13 boxes.web.memory: size "0.3MiB" is not a whole number of MiB']],
  ['zero cpus', box('    cpus: 0\n'), ['4:11 boxes.web.cpus: expected a number of at least 1, got 0']],
  ['cpus in words', box('    cpus: two\n'), ['4:11 boxes.web.cpus: expected a whole number, got "two"']],
  ['an unknown restart policy', box('    restart: sometimes\n'), ['4:14 boxes.web.restart: expected one of no, on-failure, always, unless-stopped; got "sometimes"']],
  ['a misspelt restart policy', box('    restart: alway\n'), ['4:14 boxes.web.restart: expected one of no, on-failure, always, unless-stopped; got "alway" (did you mean "always"?)']],
  ['a pause after too little idleness', box('    pause_after: 2s\n'), ['4:18 boxes.web.pause_after: expected at least 10s of idleness before a pause, got 2s']],
  ['a pause of a box with host folders', box('    pause_after: 10m\n    volumes: ["./src:/work"]\n'), ['4:18 boxes.web.pause_after: box web mounts host folders, whose state cannot be saved (virtiofs), so it cannot be paused: drop pause_after or the host folders']],
  ['an unknown network', box('    network: host\n'), ['4:14 boxes.web.network: expected one of default, none; got "host"']],
  ['a port out of range', box('    ports: ["8080:80", "99999:80"]\n'), ['4:24 boxes.web.ports[1]: "99999:80": host port 99999 is out of range (1–65535)']],
  ['a malformed network rule', box('    network:\n      allow: [api.example.com, "api..example.com:443"]\n'), [`5:32 boxes.web.network.allow[1]: network rule "api..example.com:443": "api..example.com" is not a domain name; ${RULES}`]],
  ['a CIDR prefix past 32', box('    network:\n      deny: ["10.0.0.0/33"]\n'), [`5:14 boxes.web.network.deny[0]: network rule "10.0.0.0/33": prefix /33 is longer than 32; ${RULES}`]],
  ['a port out of range in a rule', box('    network:\n      allow: ["*.example.com:70000"]\n'), [`5:15 boxes.web.network.allow[0]: network rule "*.example.com:70000": port 70000 is out of range (1–65535); ${RULES}`]],
  ['a wildcard in the middle', box('    network:\n      allow: ["api.*.example.com"]\n'), [`5:15 boxes.web.network.allow[0]: network rule "api.*.example.com": "api.*.example.com" is not a domain name (a wildcard is allowed only as the first label, "*."); ${RULES}`]],
  ['rules with network mode none', box('    network:\n      mode: none\n      allow: [api.example.com]\n'), ['5:7 boxes.web.network: a box with network mode "none" reaches nothing, so it takes no allow or deny rules: remove them or the mode']],
  ['rules that are not a list', box('    network:\n      allow: api.example.com\n'), ['5:14 boxes.web.network.allow: expected a list, got "api.example.com"']],
  ['a misspelt network key', box('    network:\n      alow: [api.example.com]\n'), ['5:7 boxes.web.network.alow: unknown key "alow" (did you mean "allow"?)']],
  ['a secret with no source', box('    secrets:\n      KEY: {hosts: [api.example.com]}\n'), ['5:12 boxes.web.secrets.KEY: secret "KEY": give exactly one source: env (a host environment variable) or file (from the SDK: value)']],
  ['a secret with an unknown source', box('    secrets:\n      KEY: {vault: x, hosts: [api.example.com]}\n'), ['5:13 boxes.web.secrets.KEY.vault: unknown key "vault"; allowed here: env, file, hosts']],
  ['a secret host with a port', box('    secrets:\n      KEY: {env: KEY, hosts: ["api.example.com:443"]}\n'), ['5:12 boxes.web.secrets.KEY: secret "KEY": host "api.example.com:443" must be a domain or *.domain, without a port']],
  ['a secret with a bad name', box('    secrets:\n      9KEY: {env: KEY, hosts: [api.example.com]}\n'), ["5:13 boxes.web.secrets.9KEY: secret \"9KEY\": a name is an environment variable name (letters, digits, '_'; not starting with a digit)"]],
  ['ports with network none', box('    network: none\n    ports: ["8080:80"]\n'), ['5:12 boxes.web.ports: a box with network "none" cannot publish ports: remove them or the network setting']],
  [
    'one host port in two boxes',
    'boxes:\n  web:\n    image: x\n    ports: ["8080:80"]\n  api:\n    image: x\n    ports: ["8080:3000"]\n',
    ['7:13 boxes.api.ports[0]: host port 8080/tcp is already published by box web: give one of them another host port'],
  ],
  ['an unknown dependency', 'boxes:\n  web:\n    image: x\n    depends_on: [dbb]\n  db:\n    image: y\n', ['4:18 boxes.web.depends_on[0]: no box named "dbb" in this project (did you mean "db"?)']],
  ['a box depending on itself', box('    depends_on: [web]\n'), ['4:18 boxes.web.depends_on[0]: box web cannot depend on itself']],
  [
    'a dependency cycle',
    'boxes:\n  a:\n    image: x\n    depends_on: [b]\n  b:\n    image: x\n    depends_on: [a]\n',
    ['4:17 boxes.a.depends_on: depends_on makes a cycle: a → b → a'],
  ],
  [
    'healthy on a box without healthcheck',
    'boxes:\n  web:\n    image: x\n    depends_on:\n      db: {condition: healthy}\n  db:\n    image: y\n',
    ['5:7 boxes.web.depends_on.db: box db has no healthcheck, so it can never be healthy: give it one, or use condition: started'],
  ],
  [
    'an unknown condition',
    'boxes:\n  web:\n    image: x\n    depends_on:\n      db: {condition: ready}\n  db:\n    image: y\n',
    ['5:23 boxes.web.depends_on.db.condition: expected one of started, healthy; got "ready"'],
  ],
  ['an undeclared named volume', box('    volumes: ["dat:/data"]\nvolumes:\n  data: {}\n'), ['4:15 boxes.web.volumes[0]: no volume named "dat" under the top-level "volumes:" (did you mean "data"?)']],
  ['a mount without a target', box('    volumes: ["data"]\n'), ['4:15 boxes.web.volumes[0]: expected a mount: a string such as data:/var/lib/data[:ro], or {source, target, read_only}, got "data"']],
  ['a host path that is missing', box('    volumes: ["./nothere:/work"]\n'), [`4:15 boxes.web.volumes[0]: host path ${path.join(dir, 'nothere')} does not exist: create it, or fix the path (relative paths start from ${dir})`]],
  ['a relative mount target', box('    volumes:\n      - {source: ./src, target: work}\n'), ['5:33 boxes.web.volumes[0].target: expected an absolute path in the box, got "work"']],
  [
    'one named volume in two boxes',
    'boxes:\n  a:\n    image: x\n    volumes: ["data:/d"]\n  b:\n    image: x\n    volumes: ["data:/d"]\nvolumes:\n  data:\n',
    ['7:15 boxes.b.volumes[0]: volume data is already mounted by box a: a named volume is a disk and belongs to one box at a time'],
  ],
  ['a healthcheck without test', box('    healthcheck: {interval: 5s}\n'), ['4:18 boxes.web.healthcheck: missing required key "test"']],
  ['an interval in words', box('    healthcheck:\n      test: "true"\n      interval: 5 seconds\n'), ['6:17 boxes.web.healthcheck.interval: expected a duration such as 500ms, 10s, 5m or 1h30m (a bare number is seconds), got "5 seconds"']],
  ['a test of an unknown form', box('    healthcheck:\n      test: [RUN, "true"]\n'), ['5:14 boxes.web.healthcheck.test[0]: expected one of CMD, CMD-SHELL; got "RUN"']],
  ['snapshots too often', box('    snapshots: {every: 5s}\n'), ['4:24 boxes.web.snapshots.every: expected at least 10s between automatic snapshots, got 5s']],
  ['keep zero snapshots', box('    snapshots: {keep: 0}\n'), ['4:23 boxes.web.snapshots.keep: expected a number of at least 1, got 0']],
  ['a misspelt policy key', box('    snapshots: {befor_apply: true}\n'), ['4:17 boxes.web.snapshots.befor_apply: unknown key "befor_apply" (did you mean "before_apply"?)']],
  ['an env entry without =', box('    env: [FOO]\n'), ['4:11 boxes.web.env[0]: expected NAME=value, got "FOO"']],
  ['an invalid box name', 'boxes:\n  Web!:\n    image: x\n', ["2:3 boxes.Web!: invalid name \"Web!\": expected a box name of lower-case letters, digits, '-' and '_' (up to 40, starting with a letter or digit)"]],
  ['an invalid project name', 'name: My Project\nboxes:\n  web: {image: x}\n', ["1:7 name: expected a project name of lower-case letters, digits, '-' and '_' (up to 40, starting with a letter or digit), got \"My Project\""]],
  ['a duplicate key', 'boxes:\n  web: {image: x}\nboxes:\n  db: {image: y}\n', ['3:1 the key "boxes" appears twice in the same mapping: keep one']],
  ['tab indentation', 'boxes:\n  web:\n\timage: x\n', ['3:1 Tabs are not allowed as indentation']],
  ['a required variable that is unset', box('    command: ${CMD:?set CMD to the server command}\n'), ['4:14 CMD is required: set CMD to the server command']],
  ['an unterminated variable', box('    command: "echo ${HOME"\n'), ['4:14 unterminated "${" in "echo ${HOME": close it with "}" (write $$ for a literal $)']],
  ['a relative working_dir', box('    working_dir: app\n'), ['4:18 boxes.web.working_dir: expected an absolute path in the box, got "app"']],
  ['an empty command list', box('    command: []\n'), ['4:14 boxes.web.command: must not be empty']],
  ['a volume too small', 'boxes:\n  web: {image: x}\nvolumes:\n  data: {size: 8MiB}\n', ['4:16 volumes.data.size: a volume needs at least 16MiB (got 8MiB)']],
];

describe('malformed project files', () => {
  it.each(malformed)('%s', (_what, text, want) => expect(problems(text)).toEqual(want));

  it('reports every problem of a file at once, in file order', () => {
    const got = problems(box('    memory: lots\n    cpus: 0\n    restart: sometimes\n'));
    expect(got.map((p) => p.split(' ')[0])).toEqual(['4:13', '5:11', '6:14']);
  });

  it('names the file in the message', () => {
    try {
      parseProject(box('    cpus: 0\n'), file, { env: {} });
      expect.unreachable();
    } catch (e) {
      expect((e as Error).message).toMatch(/boxlite\.yaml:4:11: boxes\.web\.cpus: expected a number of at least 1, got 0$/);
    }
  });
});

describe('valid project files', () => {
  it('normalises a box with defaults, units and resolved paths', () => {
    const p = parseProject(box('    memory: 1GiB\n    disk: 10G\n    ports: ["8080:80", 53/udp]\n    command: python3 -m http.server\n    setup:\n      - apt-get update\n      - [touch, /done]\n    volumes: ["./src:/work:ro", "data:/data"]\nvolumes:\n  data: {size: 2GiB}\n'), file, { env: {} });
    expect(p.name).toBe(path.basename(dir).toLowerCase().replace(/[^a-z0-9_-]/g, ''));
    const w = p.boxes.web;
    expect(w).toMatchObject({ image: 'debian:12', cpus: 1, memoryMib: 1024, diskMib: 10240, restart: 'no', network: 'default', command: ['sh', '-c', 'python3 -m http.server'] });
    expect(w.setup).toEqual([['sh', '-c', 'apt-get update'], ['touch', '/done']]);
    expect(w.ports.map((x) => [x.hostPort, x.guestPort, x.protocol])).toEqual([[8080, 80, 'tcp'], [0, 53, 'udp']]);
    expect(w.volumes).toEqual([
      { type: 'bind', source: path.join(dir, 'src'), target: '/work', readOnly: true },
      { type: 'volume', source: 'data', target: '/data', readOnly: false },
    ]);
    expect(p.volumes.data).toEqual({ name: 'data', sizeMib: 2048 });
  });

  it('reads pause_after as a duration', () => {
    expect(parseProject(box('    pause_after: 10m\n'), file, { env: {} }).boxes.web.pauseAfterMs).toBe(600_000);
    expect(parseProject(box(''), file, { env: {} }).boxes.web.pauseAfterMs).toBeUndefined();
  });

  it('resolves a local image path against the project folder', () => {
    expect(parseProject('boxes:\n  web: {image: ./src}\n', file, { env: {} }).boxes.web.image).toBe(path.join(dir, 'src'));
  });

  it('interpolates from the environment and .env, the environment winning, and reads numbers back', () => {
    fs.writeFileSync(path.join(dir, '.env'), '# settings\nCPUS=3\nexport TAG="12"\nGREETING=from-dotenv\n');
    try {
      const p = parseProject(box('    cpus: ${CPUS}\n    env:\n      TAG: debian-${TAG}\n      GREETING: ${GREETING}\n      PRICE: $$5\n      MODE: ${MODE:-dev}\n').replace('debian:12', 'debian:${TAG}'), file, { env: { GREETING: 'from-env' } });
      expect(p.boxes.web.cpus).toBe(3);
      expect(p.boxes.web.image).toBe('debian:12');
      expect(p.boxes.web.env).toEqual({ TAG: 'debian-12', GREETING: 'from-env', PRICE: '$5', MODE: 'dev' });
    } finally {
      fs.rmSync(path.join(dir, '.env'));
    }
  });

  it('warns about an unset variable and uses an empty string', () => {
    const p = parseProject(box('    env: {X: "a${NOPE}b"}\n'), file, { env: {} });
    expect(p.boxes.web.env.X).toBe('ab');
    expect(p.warnings[0]).toMatch(/:4:16: variable NOPE is not set: using an empty string/);
  });

  it('takes depends_on in both forms and the healthcheck forms', () => {
    const p = parseProject(
      'boxes:\n  web:\n    image: x\n    depends_on: [db]\n    healthcheck:\n      test: [CMD-SHELL, "curl -f localhost"]\n      interval: 1m30s\n      start_period: 500ms\n  db:\n    image: y\n    depends_on: {cache: {condition: healthy}}\n  cache:\n    image: z\n    healthcheck: {test: [CMD, redis-cli, ping], retries: 5}\n',
      file,
      { env: {} },
    );
    expect(p.boxes.web.dependsOn).toEqual({ db: 'started' });
    expect(p.boxes.db.dependsOn).toEqual({ cache: 'healthy' });
    expect(p.boxes.web.healthcheck).toEqual({ test: ['sh', '-c', 'curl -f localhost'], intervalMs: 90_000, timeoutMs: 30_000, retries: 3, startPeriodMs: 500 });
    expect(p.boxes.cache.healthcheck!.test).toEqual(['redis-cli', 'ping']);
  });

  it('loads the examples', () => {
    const examples = path.resolve(__dirname, '../../examples');
    const found = fs.readdirSync(examples).filter((d) => fs.existsSync(path.join(examples, d, 'boxlite.yaml')));
    expect(found.length).toBeGreaterThanOrEqual(3);
    for (const d of found) expect(() => loadProject(path.join(examples, d, 'boxlite.yaml'), { env: { ...process.env } })).not.toThrow();
  });
});

describe('units and interpolation', () => {
  it.each([
    [512, 512],
    ['512MiB', 512],
    ['2GiB', 2048],
    ['10G', 10240],
    ['1.5GB', 1536],
    ['1TiB', 1048576],
    ['4096KiB', 4],
  ] as [number | string, number][])('size %j is %d MiB', (v, mib) => expect(parseSizeMib(v)).toBe(mib));

  it.each([
    [10, 10_000],
    ['500ms', 500],
    ['30s', 30_000],
    ['5m', 300_000],
    ['1h30m', 5_400_000],
  ] as [number | string, number][])('duration %j is %d ms', (v, ms) => expect(parseDurationMs(v)).toBe(ms));

  it('expands the compose forms', () => {
    const env = { A: 'a', EMPTY: '' };
    const w: string[] = [];
    expect(interpolate('${A}-$A-${EMPTY:-d}-${EMPTY-d}-${UNSET-d}-$$', env, (m) => w.push(m))).toBe('a-a-d--d-$');
    expect(w).toEqual([]);
    expect(() => interpolate('${EMPTY:?needed}', env, () => {})).toThrow('EMPTY is required: needed');
    expect(interpolate('${EMPTY?needed}', env, () => {})).toBe('');
    expect(() => interpolate('${1A}', env, () => {})).toThrow(/is not a variable/);
  });

  it('reads .env files', () => {
    expect(parseDotenv('A=1\n# c\n\nexport B = "two words"\nC=\'x#y\'\nD=v # comment\n', '.env')).toEqual({ A: '1', B: 'two words', C: 'x#y', D: 'v' });
    expect(() => parseDotenv('just words\n', '.env')).toThrow('.env:1: expected NAME=value, got "just words"');
  });
});

describe('the README reference', () => {
  it('is the one made from the schema (npm run docs)', async () => {
    const { projectSchema } = await import('../../src/spec/load.js');
    const { schemaReference, REFERENCE_START, REFERENCE_END } = await import('../../src/spec/reference.js');
    const readme = fs.readFileSync(path.resolve(__dirname, '../../README.md'), 'utf8');
    const block = readme.slice(readme.indexOf(REFERENCE_START) + REFERENCE_START.length, readme.indexOf(REFERENCE_END)).trim();
    expect(block).toBe(schemaReference(projectSchema()));
  });
});
