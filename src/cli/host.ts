// Commands about this host: setup (Debian packages and guest assets) and doctor (what works here, what to fix).
import { cgroupSupport, vmmOverheadMib } from '../vmm/cgroup.js';
import { setup, loadAssets, missingPackages, HOST_PACKAGES } from '../runtime/assets.js';
import { qemuBinary } from '../vmm/qemu.js';
import { probeHost } from '../vmm/accel.js';
import { describeJail, jailWanted, probeJail } from '../vmm/jail.js';
import * as fs from 'node:fs';
import { run as runCmd } from '../util/exec.js';
import { parseArgs } from './args.js';
import type { Command } from './command.js';

export const HOST_COMMANDS: Record<string, Command> = {
  setup: {
    usage: 'setup [--if-missing]',
    help: 'install the Debian packages boxlite needs and build the guest assets',
    opts: { 'if-missing': { help: 'only build what is missing or out of date' } },
    async run({ rt, err }, args, spec) {
      const p = parseArgs(args, spec, -1, 'setup');
      await setup(rt.home, { ifMissing: !!p.opts['if-missing'], say: (m) => err(`setup: ${m}`) });
      return 0;
    },
  },

  doctor: {
    usage: 'doctor',
    help: 'check this host: accelerator, QEMU, guest assets',
    opts: {},
    async run({ rt, out }) {
      let ok = true;
      const line = (good: boolean, what: string, detail: string) => {
        if (!good) ok = false;
        out(`${good ? 'ok  ' : 'FIX '} ${what.padEnd(12)} ${detail}`);
      };
      const probe = probeHost();
      try {
        const a = rt.accel();
        line(true, 'accelerator', `${a.accel} — ${a.reason}`);
      } catch (e) {
        line(false, 'accelerator', (e as Error).message);
      }
      out(`     ${''.padEnd(12)} /dev/kvm: ${probe.kvmDevice}, kvm_pvm: ${probe.pvm ? 'loaded' : 'no'}, vmx/svm: ${probe.cpuVirtFlags ? 'yes' : 'no'}`);
      const qemuProblem = rt.engine.check();
      if (qemuProblem) line(false, 'qemu', qemuProblem);
      else line(true, 'qemu', (await runCmd(qemuBinary(), ['--version']).catch(() => '?')).split('\n')[0]);
      const missing = missingPackages();
      line(missing.length === 0, 'packages', missing.length ? `missing ${missing.map((m) => m.pkg).join(', ')}: run 'boxlite setup'` : HOST_PACKAGES.map((p) => p.pkg).join(', '));
      try {
        const a = loadAssets(rt.home);
        line(true, 'assets', `kernel ${a.kernelVersion}, ${a.initImage}`);
      } catch (e) {
        line(false, 'assets', (e as Error).message);
      }
      const jail = describeJail(jailWanted(), probeJail());
      line(jail.on || !jailWanted(), 'jail', jail.detail);
      const cg = cgroupSupport();
      line(true, 'limits', cg.mode === 'none' ? `rlimits per box (files, processes, file size); no cgroup: ${cg.why}` : `a cgroup ${cg.mode} per box: memory = its RAM + the VMM's overhead (${vmmOverheadMib(512, 'tcg')} MiB for 512 MiB under TCG), 512 tasks, CPU weight by its vCPUs; and rlimits`);
      const mode = fs.statSync(rt.home.root).mode & 0o777;
      line(mode === 0o700, 'home', `${rt.home.root} (${mode.toString(8).padStart(4, '0')}${mode === 0o700 ? ', private to you' : ': others may read it'})`);
      return ok ? 0 : 1;
    },
  },
};
