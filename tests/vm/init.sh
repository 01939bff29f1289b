#!/bin/busybox sh
# PID 1 of the rootstream test VM (busybox, from the initramfs).
#
# It loads the modules listed in /modules.load (virtio, 9p, overlay, DRM,
# vkms, uinput), mounts the host's / read-only over 9p under a tmpfs overlay
# (so the guest sees the host's Python, .venv and repo at the same paths and
# may write anywhere without touching the host), and runs the job the host
# wrote into the read-write "job" share.  Whatever happens it ends the VM with
# an immediate reboot, which QEMU (-no-reboot) turns into an exit: a hung or
# failed guest never waits for a person.
/bin/busybox --install -s /bin
export PATH=/bin

halt_vm() {
    sync
    echo 1 > /proc/sys/kernel/printk  # no "sysrq: Resetting" after the command's output
    echo b > /proc/sysrq-trigger
    sleep 30
}

fail() {
    echo "rootstream-vm: FAILED: $*"
    halt_vm
}

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
echo 0 > /proc/sys/kernel/printk_ratelimit

while read -r ko params; do
    # shellcheck disable=SC2086  # params are words
    insmod "$ko" $params || fail "insmod $ko $params"
done < /modules.load

mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=262144 hostroot /lower \
    || fail "cannot mount the host's / over 9p"
mount -t tmpfs -o mode=0755 upper /upper
mkdir -p /upper/data /upper/work
mount -t overlay -o lowerdir=/lower,upperdir=/upper/data,workdir=/upper/work overlay /newroot \
    || fail "cannot mount the overlay over the host's /"

R=/newroot
mount -t proc proc $R/proc
mount -t sysfs sysfs $R/sys
mount -t devtmpfs devtmpfs $R/dev
mkdir -p $R/dev/pts $R/dev/shm
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts $R/dev/pts
mount -t tmpfs -o mode=1777 shm $R/dev/shm
mount -t tmpfs -o mode=0755 run $R/run
mkdir -p $R/run/rootstream-vm
mount -t 9p -o trans=virtio,version=9p2000.L,cache=none job $R/run/rootstream-vm \
    || fail "cannot mount the job share"

# A non-root user in group video (and input), as a desktop user would be.
grep -q '^vmuser:' $R/etc/passwd || {
    echo 'vmuser:x:4242:4242:rootstream VM user:/tmp/vmuser:/bin/sh' >> $R/etc/passwd
    echo 'vmuser:x:4242:' >> $R/etc/group
    sed -i -e '/^\(video\|input\):[^:]*:[0-9]*:$/ s/$/vmuser/' \
           -e '/^\(video\|input\):[^:]*:[0-9]*:..*$/ s/$/,vmuser/' $R/etc/group
}
mkdir -p $R/tmp/vmuser && chown 4242:4242 $R/tmp/vmuser

# What udev would do on a desktop: the card to group video, input devices to
# group input where this machine has one.
gid() { awk -F: -v name="$1" '$1 == name { print $3 }' $R/etc/group; }
for card in $R/dev/dri/card*; do
    [ -e "$card" ] && chgrp "$(gid video)" "$card" && chmod 660 "$card"
done
input_gid=$(gid input)
for dev in $R/dev/uinput $R/dev/input/event*; do
    [ -n "$input_gid" ] && [ -e "$dev" ] && chgrp "$input_gid" "$dev" && chmod 660 "$dev"
done

ip link set lo up
hostname rootstream-vm

echo "rootstream-vm: ready $(cut -d' ' -f1 /proc/uptime)"
chroot $R /bin/sh /run/rootstream-vm/job.sh < /dev/null
echo "$?" > $R/run/rootstream-vm/exit-status
halt_vm
