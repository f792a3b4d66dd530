// Objects as the YAML stream kubectl reads: one document each. YAML 1.1 rules, because kubectl's parser reads
// an unquoted `on`, `yes` or `y` as a boolean (a 1.2 writer leaves them bare), and no anchors for shared maps.
import { yamlLib } from '../spec/yaml-lib.js';
import type { K8sObject } from './validate.js';

export function toYamlStream(objects: K8sObject[]): string {
  return objects.map((o) => yamlLib().stringify(o, { version: '1.1', aliasDuplicateObjects: false, lineWidth: 0 })).join('---\n');
}

export function fromYamlStream(text: string): K8sObject[] {
  return yamlLib().parseAllDocuments(text, { version: '1.1' })
    .map((d) => d.toJS() as K8sObject)
    .filter(Boolean);
}
