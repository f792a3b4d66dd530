// SimpleBox on a server: the same life as on this machine (made and started on first use, autoRemove removes it
// at stop, reuseExisting finds one by name), each step a call of BoxLite's REST API.
import { BoxStateError } from '../core/errors.js';
import type { CreateOptions } from '../runtime/options.js';
import type { ExecResult } from '../runtime/execution.js';
import type { SimpleBoxInfo, SimpleBoxMetrics, SimpleDelegate, SimpleExecOptions } from '../runtime/simple-box.js';
import { copyFrom, copyInto } from '../runtime/copy.js';
import type { RemoteBoxes } from './remote.js';

export class RemoteSimpleBox implements SimpleDelegate {
  private box: any = null;
  private starting: Promise<void> | null = null;
  private made = false;

  constructor(
    private readonly remote: RemoteBoxes,
    private readonly create: CreateOptions,
    private readonly o: { autoRemove: boolean; reuseExisting: boolean },
  ) {}

  get id(): string | undefined {
    return this.box?.box_id;
  }
  get name(): string | undefined {
    return this.box?.name ?? this.create.name;
  }
  get created(): boolean {
    return this.made;
  }

  start(): Promise<void> {
    this.starting ??= (async () => {
      let box = this.o.reuseExisting && this.create.name ? await this.remote.find(this.create.name) : null;
      if (!box) {
        box = await this.remote.create(this.create);
        this.made = true;
      }
      this.box = box;
      if (box.status !== 'running') this.box = await this.remote.start(box.box_id);
    })().catch((e) => {
      this.starting = null;
      throw e;
    });
    return this.starting;
  }

  async exec(argv: string[], opts: SimpleExecOptions): Promise<ExecResult> {
    await this.start();
    return this.remote.exec(this.box.box_id, argv, opts); // the server starts a box someone stopped meanwhile
  }

  async copyIn(hostPath: string, boxPath: string): Promise<void> {
    await this.start();
    await copyInto(this.remote.copyTarget(this.box.box_id, this.box.name ?? this.box.box_id), hostPath, boxPath);
  }

  async copyOut(boxPath: string, hostPath: string): Promise<void> {
    await this.start();
    await copyFrom(this.remote.copyTarget(this.box.box_id, this.box.name ?? this.box.box_id), boxPath, hostPath);
  }

  info(): SimpleBoxInfo {
    const j = this.box;
    if (!j) throw new BoxStateError('this SimpleBox has no box yet: it is made by the first exec(), or await getInfo()');
    return { id: j.box_id, name: j.name, state: { status: j.status, running: j.status === 'running' }, createdAt: j.created_at, image: j.image, cpus: j.cpus, memoryMib: j.memory_mib, record: undefined as never };
  }

  async metrics(): Promise<SimpleBoxMetrics> {
    await this.start();
    const m = await this.remote.metrics(this.box.box_id);
    const t = m.boot_timing ?? {};
    const n = (v: unknown) => (typeof v === 'number' ? v : undefined);
    return {
      ...m.boxlite,
      commandsExecutedTotal: m.commands_executed_total,
      execErrorsTotal: m.exec_errors_total,
      bytesSentTotal: m.bytes_sent_total,
      bytesReceivedTotal: m.bytes_received_total,
      networkBytesSent: n(m.network_bytes_sent),
      networkBytesReceived: n(m.network_bytes_received),
      cpuPercent: n(m.cpu_percent),
      memoryBytes: n(m.memory_bytes),
      guestBootDurationMs: n(t.guest_boot_ms),
      totalCreateDurationMs: n(t.total_create_ms),
      stageBoxSpawnMs: n(t.box_spawn_ms),
    };
  }

  async stop(): Promise<void> {
    if (this.starting) await this.starting.catch(() => {});
    if (!this.box) return;
    if (this.o.autoRemove && this.made) {
      await this.remote.remove(this.box.box_id, true);
      this.box = null;
      this.starting = null;
      this.made = false;
    } else {
      this.box = await this.remote.stop(this.box.box_id);
    }
  }
}
