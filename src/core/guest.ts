// Paths inside every box, put there by the init image (src/runtime/guest): the host's tools rely on them.

/** A static busybox, present in every box whatever its image holds. */
export const BUSYBOX = '/.boxlite/bin/busybox';
