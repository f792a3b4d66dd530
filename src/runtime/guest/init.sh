#!/bin/busybox sh
# boxlite initramfs init: load the virtio drivers, mount the init image (/dev/vda, read-only, the agent and its
# runtime) and the box's own disk (/dev/vdb), then switch_root into the box with the agent under tini.
# Failures print a "boxlite-init: error:" line, which the host shows as the reason a box did not boot.
export PATH=/bin
echo "boxlite-init: started"
/bin/busybox --install -s /bin
mkdir -p /proc /sys /dev /mnt/init /mnt/root
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

fail() {
  echo "boxlite-init: error: $*"
  sync
  poweroff -f
}

for m in $(cat /etc/modules.order); do
  insmod "/lib/modules/$m" || fail "cannot load kernel module $m"
done

n=0
while [ ! -b /dev/vda ] || [ ! -b /dev/vdb ]; do
  n=$((n + 1))
  [ $n -gt 1000 ] && fail "the box's disks did not appear (/dev/vda, /dev/vdb)"
  usleep 5000
done

mount -t ext4 -o ro,noload /dev/vda /mnt/init || fail "cannot mount the boxlite init image (/dev/vda): run 'boxlite setup'"
mount -t ext4 -o rw,noatime /dev/vdb /mnt/root || fail "cannot mount the box's disk (/dev/vdb): its file system is damaged or not ext4"

# A box made from an image starts with a file system the size of the image; grow it to fill the disk.
if grep -q 'boxlite\.grow=1' /proc/cmdline; then
  /mnt/init/lib/ld-linux-x86-64.so.2 --library-path /mnt/init/lib /mnt/init/bin/resize2fs /dev/vdb >/dev/null 2>/resize.err ||
    fail "cannot grow the box's file system to its disk: $(cat /resize.err)"
  echo "boxlite-init: file system grown"
fi

# Named volumes: boxlite.vol=SERIAL,TARGET,ro|rw, one per volume; each is a virtio disk with that serial.
for arg in $(cat /proc/cmdline); do
  case "$arg" in
  boxlite.vol=*)
    v=${arg#boxlite.vol=}
    serial=${v%%,*}
    rest=${v#*,}
    target=${rest%,*}
    mode=${rest##*,}
    dev=""
    n=0
    while [ -z "$dev" ]; do
      for s in /sys/block/vd*/serial; do
        [ "$(cat "$s" 2>/dev/null)" = "$serial" ] && dev=/dev/$(basename "$(dirname "$s")")
      done
      n=$((n + 1))
      [ -z "$dev" ] && [ $n -gt 400 ] && fail "the disk of volume $serial did not appear"
      [ -z "$dev" ] && usleep 5000
    done
    mkdir -p "/mnt/root$target" || fail "cannot make the mount point $target for a volume"
    mount -t ext4 -o "$mode,noatime" "$dev" "/mnt/root$target" || fail "cannot mount volume $serial at $target"
    ;;
  esac
done

# Host folders and files: boxlite.fs=TAG,TARGET,ro|rw,dir|file, each a virtiofs share. A file is the only entry
# (named "file") of its share, bind-mounted onto the target.
for arg in $(cat /proc/cmdline); do
  case "$arg" in
  boxlite.fs=*)
    v=${arg#boxlite.fs=}
    tag=${v%%,*}
    rest=${v#*,}
    target=${rest%%,*}
    rest=${rest#*,}
    mode=${rest%%,*}
    kind=${rest#*,}
    if [ "$kind" = file ]; then
      mkdir -p "/mnt/fs/$tag" && mount -t virtiofs -o "$mode" "$tag" "/mnt/fs/$tag" || fail "cannot mount the share of $target"
      mkdir -p "/mnt/root${target%/*}" && { [ -e "/mnt/root$target" ] || : > "/mnt/root$target"; } || fail "cannot make the mount point $target for a host file"
      mount --bind "/mnt/fs/$tag/file" "/mnt/root$target" || fail "cannot mount the host file at $target"
      [ "$mode" = ro ] && mount -o remount,bind,ro "/mnt/root$target"
    else
      mkdir -p "/mnt/root$target" || fail "cannot make the mount point $target for a host folder"
      mount -t virtiofs -o "$mode" "$tag" "/mnt/root$target" || fail "cannot mount the host folder at $target"
    fi
    ;;
  esac
done

# wait_nic NAME MAC: waits for the NIC with that MAC and names it NAME.
wait_nic() {
  n=0
  while :; do
    for d in /sys/class/net/*; do
      if [ "$(cat "$d/address" 2>/dev/null)" = "$2" ]; then
        [ "${d##*/}" = "$1" ] || ip link set dev "${d##*/}" name "$1" || fail "cannot name the NIC $2 $1"
        return 0
      fi
    done
    n=$((n + 1))
    [ $n -gt 400 ] && fail "the box's network device $1 ($2) did not appear"
    usleep 5000
  done
}

# Network: loopback always; eth0 when the host gave the box a network (boxlite.net=ADDR/PREFIX,GATEWAY,DNS[,DNS]).
ip link set lo up
# The project LAN (boxlite.lan=ADDR/PREFIX,MAC): boxes of one project reach each other by name over it.
lan_arg=$(sed -n 's/.*boxlite\.lan=\([^ ]*\).*/\1/p' /proc/cmdline)
if [ -n "$lan_arg" ]; then
  lan_addr=${lan_arg%%,*}
  lan_mac=${lan_arg#*,}
  wait_nic lan0 "$lan_mac"
  { ip link set lan0 up && ip addr add "$lan_addr" dev lan0; } || fail "cannot configure the project LAN (lan0 $lan_addr)"
fi

net_arg=$(sed -n 's/.*boxlite\.net=\([^ ]*\).*/\1/p' /proc/cmdline)
if [ -n "$net_arg" ]; then
  net_addr=${net_arg%%,*}
  net_rest=${net_arg#*,}
  net_gw=${net_rest%%,*}
  net_dns=${net_rest#*,}
  # The NIC to the network helper has a fixed MAC; with a LAN NIC beside it, probe order decides nothing.
  wait_nic eth0 52:54:00:12:34:56
  { ip link set eth0 mtu 65520 up && ip addr add "$net_addr" dev eth0 && ip route add default via "$net_gw"; } ||
    fail "cannot configure the box's network (eth0 $net_addr via $net_gw)"
  if [ -d /mnt/root/etc ]; then
    rm -f /mnt/root/etc/resolv.conf
    for d in $(echo "$net_dns" | tr ',' ' '); do echo "nameserver $d"; done > /mnt/root/etc/resolv.conf
  fi
fi

hostname_arg=$(sed -n 's/.*boxlite\.hostname=\([^ ]*\).*/\1/p' /proc/cmdline)
[ -n "$hostname_arg" ] && hostname "$hostname_arg"

cd /mnt/root || fail "cannot enter the box's root"
mkdir -p .boxlite proc sys dev tmp || fail "cannot prepare mount points in the box's root"
chmod 1777 tmp 2>/dev/null
mount --move /mnt/init .boxlite
mount --move /dev dev
mount --move /sys sys
mount --move /proc proc
mkdir -p dev/pts dev/shm
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts dev/pts
mount -t tmpfs -o mode=1777 shm dev/shm
exec switch_root /mnt/root /.boxlite/bin/tini -s -- /.boxlite/bin/busybox sh /.boxlite/start.sh
fail "switch_root failed"
