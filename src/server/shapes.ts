// boxlite's records and figures in BoxLite's REST shapes (snake_case), with boxlite's own facts beside them under
// names BoxLite does not use, so a BoxLite client reads what it knows and a boxlite client (the dashboard) more.
import type { BoxRecord } from '../runtime/types.js';
import type { BoxStatus } from '../runtime/status.js';
import type { BoxMetrics } from '../runtime/metrics.js';
import type { SnapshotInfo } from '../runtime/types.js';
import { projectLabel } from '../reconciler/label.js';

type Info = BoxRecord & BoxStatus;

/** BoxLite's status of a box: boxlite's created is configured; an exited box (crashed, killed or powered off) is
 *  stopped, with boxlite's reason in boxlite.exit. */
export function apiStatus(state: Info['state']): string {
  switch (state) {
    case 'created': return 'configured';
    case 'running': return 'running';
    case 'paused': return 'paused';
    default: return 'stopped';
  }
}

export const imageOf = (r: BoxRecord) => (r.source.kind === 'image' ? r.source.reference : r.source.kind === 'dir' ? r.source.path : 'imported');

export function boxJson(r: Info): Record<string, unknown> {
  const times = [r.createdAt, r.startedAt, r.stoppedAt, r.paused?.at, r.exit?.at].filter((t): t is string => !!t).sort();
  const p = projectLabel(r);
  return {
    box_id: r.id,
    name: r.name,
    status: apiStatus(r.state),
    created_at: r.createdAt,
    updated_at: times[times.length - 1],
    pid: r.pid ?? null,
    image: imageOf(r),
    cpus: r.options.cpus,
    memory_mib: r.options.memoryMib,
    labels: p ? { 'boxlite.project': p.project, 'boxlite.box': p.box } : {},
    auto_stop: 0,
    auto_delete: 0,
    auto_resume: true,
    boxlite: {
      state: r.state,
      ...(r.exit ? { exit: r.exit } : {}),
      ...(r.network ? { network: r.network } : {}),
      disk_size_mib: r.options.diskSizeMib,
      ports: (r.ports ?? r.options.ports).map((m) => ({ host_ip: m.hostIp, host_port: m.hostPort, guest_port: m.guestPort, protocol: m.protocol })),
      ...(p ? { project: { name: p.project, box: p.box, health: p.health?.status ?? null, setup: p.setup } } : {}),
      ...(r.startedAt ? { started_at: r.startedAt } : {}),
      ...(r.lastStart ? { last_start: r.lastStart } : {}),
    },
  };
}

/** Per-box figures: BoxLite's BoxMetrics, with boxlite's full reading under boxlite. cpuPercent needs two readings. */
export function metricsJson(m: BoxMetrics, before: BoxMetrics | undefined, startedAt: string | undefined): Record<string, unknown> {
  const started = Date.parse(startedAt ?? '');
  const cpu = m.vmm
    ? before?.vmm && m.at > before.at
      ? ((m.vmm.cpuSeconds - before.vmm.cpuSeconds) / ((m.at - before.at) / 1000)) * 100
      : started && m.at > started ? (m.vmm.cpuSeconds / ((m.at - started) / 1000)) * 100 : null
    : null;
  const s = m.lastStart;
  return {
    commands_executed_total: m.execs.total,
    exec_errors_total: m.execs.errors,
    bytes_sent_total: m.guest?.netTxBytes ?? 0,
    bytes_received_total: m.guest?.netRxBytes ?? 0,
    cpu_percent: cpu === null ? null : Math.min(100 * m.cpus, Math.max(0, cpu)),
    memory_bytes: m.guest?.memUsedBytes ?? null,
    network_bytes_sent: m.guest?.netRxBytes ?? null,
    network_bytes_received: m.guest?.netTxBytes ?? null,
    network_tcp_connections: null,
    network_tcp_errors: null,
    boot_timing: {
      total_create_ms: s?.totalMs ?? null,
      guest_boot_ms: s?.kernelToInitMs !== undefined && s.initToAgentMs !== undefined ? s.kernelToInitMs + s.initToAgentMs : null,
      filesystem_setup_ms: null,
      image_prepare_ms: null,
      guest_rootfs_ms: null,
      box_config_ms: null,
      box_spawn_ms: s?.vmSpawnMs ?? null,
      container_init_ms: null,
    },
    boxlite: m,
  };
}

export function snapshotJson(boxId: string, s: SnapshotInfo): Record<string, unknown> {
  return {
    id: `${boxId}@${s.name}`,
    box_id: boxId,
    name: s.name,
    created_at: Math.floor(Date.parse(s.createdAt) / 1000),
    guest_disk_bytes: 0,
    container_disk_bytes: 0,
    size_bytes: 0,
    boxlite: { memory: !!s.memory, auto: !!s.auto, shared_with_clones: !!s.frozen, created_at: s.createdAt },
  };
}
