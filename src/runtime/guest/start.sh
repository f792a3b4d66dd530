# Runs as tini's child inside the box: starts the agent. The agent powers the VM off itself on Shutdown; if it
# ever ends, the box is unusable, so say why and power off (the host reports the box as crashed).
B=/.boxlite/bin/busybox
# Under TCG (boxlite.jit=off) the agent's node runs without its JIT: every piece of code V8 compiles is more code
# QEMU must translate, and a restored guest translates all of it again (measured: 10 forks 6.8 s vs 10 s, an exec
# 70 ms vs 200 ms). The V8 flags must match those its code cache was made with (boot.cjs picks the cache).
JIT=
case " $($B cat /proc/cmdline) " in *" boxlite.jit=off "*) JIT=--jitless ;; esac
UV_THREADPOOL_SIZE=16 /.boxlite/lib/ld-linux-x86-64.so.2 --library-path /.boxlite/lib \
  /.boxlite/bin/node --max-old-space-size=64 $JIT /.boxlite/agent/boot.cjs
status=$?
echo "boxlite-init: agent exited with status $status"
$B sync
$B mount -o remount,ro / 2>/dev/null
$B poweroff -f
