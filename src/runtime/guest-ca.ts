// A box with secrets trusts its own CA: after each start its certificate is put in the guest, beside a bundle of
// the image's roots and it (the box's commands find both through secretEnv). The guest's root may remove them:
// then only its own HTTPS requests to its secrets' hosts fail.
import { execIn } from './exec.js';
import { boxCa, INSTALL_CA } from './secrets.js';
import type { RuntimeContext } from './context.js';

export async function installGuestCa(ctx: RuntimeContext, id: string): Promise<void> {
  const rec = ctx.records.get(id);
  if (!rec.options.secrets?.length || rec.options.network === 'none') return;
  const r = await execIn(ctx, id, INSTALL_CA, { user: '0', input: boxCa(ctx.home.boxDir(id), id).certPem });
  if (r.exitCode !== 0) throw new Error(`box ${rec.name}: could not put its CA certificate in the guest: ${r.stderr.trim()}`);
}
