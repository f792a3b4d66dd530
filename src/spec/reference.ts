// The boxlite.yaml reference in the README, made from the JSON Schema so the two cannot drift apart
// ('npm run docs' rewrites it; a unit test checks it).

type Schema = Record<string, any>;

function resolve(root: Schema, s: Schema): Schema {
  if (s?.$ref) {
    const target = s.$ref.replace('#/$defs/', '');
    return { ...root.$defs[target], ...Object.fromEntries(Object.entries(s).filter(([k]) => k !== '$ref')) };
  }
  return s;
}

function typeOf(root: Schema, s: Schema): string {
  if (s?.$ref) return s.$ref.replace('#/$defs/', ''); // size, duration, command, mount: explained below the table
  s = resolve(root, s);
  if (s.enum) return s.enum.map((v: unknown) => `\`${v}\``).join(' \\| ');
  if (s.oneOf) return s.oneOf.map((o: Schema) => typeOf(root, o)).filter((t: string, i: number, a: string[]) => a.indexOf(t) === i).join(' or ');
  if (s.type === 'array') return `list of ${typeOf(root, s.items ?? {})}`;
  if (s.type === 'object') return s.properties ? 'mapping' : 'mapping';
  if (Array.isArray(s.type)) return s.type.join(' or ');
  return s.type ?? 'value';
}

function rows(root: Schema, s: Schema, prefix: string): string[] {
  s = resolve(root, s);
  const out: string[] = [];
  for (const [k, raw] of Object.entries<Schema>(s.properties ?? {})) {
    const p = resolve(root, raw);
    const desc = (raw.description ?? p.description ?? p['x-expected'] ?? '').replace(/\|/g, '\\|');
    const req = (s.required ?? []).includes(k) ? ' (required)' : '';
    out.push(`| \`${prefix}${k}\` | ${typeOf(root, raw)} | ${desc}${req} |`);
    if (p.type === 'object' && p.properties) out.push(...rows(root, p, `${prefix}${k}.`));
  }
  return out;
}

export function schemaReference(schema: Schema): string {
  const box = schema.$defs.box;
  return [
    '| key | type | meaning |',
    '| --- | --- | --- |',
    ...rows(schema, { properties: { name: schema.properties.name } }, ''),
    `| \`boxes.NAME\` | mapping | ${schema.properties.boxes.description} |`,
    ...rows(schema, box, 'boxes.NAME.'),
    `| \`volumes.NAME\` | mapping or nothing | ${schema.properties.volumes.description} |`,
    ...rows(schema, schema.$defs.volume, 'volumes.NAME.'),
    '',
    ...['size', 'duration', 'command', 'mount'].map((d) => `- *${d}*: ${schema.$defs[d].description}`),
  ].join('\n');
}

export const REFERENCE_START = '<!-- boxlite.yaml reference: made from schema/boxlite.schema.json by `npm run docs` -->';
export const REFERENCE_END = '<!-- end of the boxlite.yaml reference -->';
