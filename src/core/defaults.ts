// Defaults and limits shared by the runtime, the project file's loader and the CLI.
export const DEFAULTS = { cpus: 1, memoryMib: 512, diskSizeMib: 2048 };
export const MIN_MEMORY_MIB = 128;
export const MIN_DISK_MIB = 64;
export const MAX_CPUS = 64;
export const MIN_VOLUME_MIB = 16;
export const DEFAULT_VOLUME_MIB = 1024;
