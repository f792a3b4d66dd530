# Runs as tini's child inside the box: starts the agent. The agent powers the VM off itself on Shutdown; if it
# ever ends, the box is unusable, so say why and power off (the host reports the box as crashed).
B=/.boxlite/bin/busybox
UV_THREADPOOL_SIZE=16 /.boxlite/lib/ld-linux-x86-64.so.2 --library-path /.boxlite/lib \
  /.boxlite/bin/node --max-old-space-size=64 /.boxlite/agent/boot.cjs
status=$?
echo "boxlite-init: agent exited with status $status"
$B sync
$B mount -o remount,ro / 2>/dev/null
$B poweroff -f
