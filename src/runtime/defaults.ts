// Box defaults, shared by the runtime and the project file's loader (which must not load the runtime itself).
export const DEFAULTS = { cpus: 1, memoryMib: 512, diskSizeMib: 2048 };
export const MIN_MEMORY_MIB = 128;
