// The envelope of agent-sandbox's Sandbox (agents.x-k8s.io/v1beta1), as facts read from that project's v1beta1 API
// types (api/v1beta1/sandbox_types.go, from which its CRD k8s/crds/agents.x-k8s.io_sandboxes.yaml is generated) —
// written here in our own words because agent-sandbox publishes no npm package to depend on. Only the envelope:
// the embedded PodSpec and PersistentVolumeClaimSpec are Kubernetes' own (k8s.io/api v0.36 in agent-sandbox;
// kubernetes-models 5.1.0 carries v1.36.0's OpenAPI schema), and validate.ts checks them with those validators.
// Unknown fields are refused here: the API server would prune them from a CRD object without a word.
const stringMap = { type: 'object', additionalProperties: { type: 'string' } } as const;

export const SANDBOX_API_VERSION = 'agents.x-k8s.io/v1beta1';

export const SANDBOX_ENVELOPE = {
  type: 'object',
  additionalProperties: false,
  required: ['apiVersion', 'kind', 'metadata', 'spec'],
  properties: {
    apiVersion: { const: SANDBOX_API_VERSION },
    kind: { const: 'Sandbox' },
    metadata: { type: 'object' },
    spec: {
      type: 'object',
      additionalProperties: false,
      required: ['podTemplate'],
      properties: {
        podTemplate: {
          type: 'object',
          additionalProperties: false,
          required: ['spec'],
          properties: {
            // Only labels and annotations of a pod template's metadata are used.
            metadata: { type: 'object', additionalProperties: false, properties: { labels: stringMap, annotations: stringMap } },
            spec: { type: 'object' },
          },
        },
        // Atomic list; each becomes the claim "<name>-<sandbox>", mounted as a volume named <name>.
        volumeClaimTemplates: {
          type: 'array',
          items: {
            type: 'object',
            additionalProperties: false,
            required: ['spec'],
            properties: {
              metadata: { type: 'object', additionalProperties: false, properties: { name: { type: 'string' }, labels: stringMap, annotations: stringMap } },
              spec: { type: 'object' },
            },
          },
        },
        // Unset: no headless Service is made; true: one named after the Sandbox.
        service: { type: 'boolean' },
        shutdownTime: { type: 'string' },
        shutdownPolicy: { enum: ['Delete', 'Retain'] },
        operatingMode: { enum: ['Running', 'Suspended'] },
      },
    },
  },
  // The CRD's validation rule: with a Service, the name must be a DNS label (RFC 1035).
  if: { properties: { spec: { properties: { service: { const: true } }, required: ['service'] } } },
  then: { properties: { metadata: { properties: { name: { type: 'string', maxLength: 63, pattern: '^[a-z]([-a-z0-9]*[a-z0-9])?$' } }, required: ['name'] } } },
} as const;
