// Paths inside every box, put there by the init image (src/runtime/guest): the host's tools rely on them.

/** A static busybox, present in every box whatever its image holds. */
export const BUSYBOX = '/.boxlite/bin/busybox';

/** The node runtime every box carries, as a command line (it runs with its own libraries, whatever the image's). */
export const GUEST_NODE = '/.boxlite/lib/ld-linux-x86-64.so.2 --library-path /.boxlite/lib /.boxlite/bin/node';
