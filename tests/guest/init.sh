#!/bin/sh
# /init of the virtdeck test guest (busybox sh, PID 1).  Packed into the
# initramfs by tests/guest/build.py; any change here changes the cache key.
#
# Protocol on the console (ttyS0 via console=ttyS0), one line each:
#   guest -> host  VIRTDECK-GUEST-READY uptime=<s> kernel=<uname -r>   (once per boot)
#   host -> guest  ping | reboot | poweroff | panic | sh <cmd>
#   guest -> host  VIRTDECK-PONG | VIRTDECK-DONE rc=<n> | VIRTDECK-UNKNOWN <line>
# The kernel parameter virtdeck.cmd=<cmd> (or virtdeck.cmd="<cmd with spaces>")
# runs <cmd> right after the READY line.
# The VGA text console (tty1, when the domain has a display) shows the READY line
# too and takes the same commands, typed on the guest's keyboard; the answers go
# to the serial console like all the others.
#
# PID 1 must never exit (that would panic the kernel and look like a guest
# crash to QEMU's pvpanic), so everything below is defensive.

export PATH=/bin:/sbin:/usr/bin:/usr/sbin
umask 022

/bin/busybox mkdir -p /proc /sys /dev /tmp /run /var/log /var/run
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sysfs /sys
/bin/busybox mount -t devtmpfs devtmpfs /dev
/bin/busybox --install -s

# Talk to the console explicitly (the kernel may not have found one to open).
exec </dev/console >/dev/console 2>&1

# No echo: the host matches whole lines and must not see its own commands.
stty -echo 2>/dev/null

for m in pvpanic pvpanic-mmio evdev button; do
    if [ -e "/lib/modules/$m.ko" ]; then
        insmod "/lib/modules/$m.ko" || echo "VIRTDECK-WARN insmod $m failed"
    fi
done

# The ACPI power button (LNXPWRBN, driven by button.ko) shows up as an input
# device; busybox acpid opens /dev/input/event* once at start, so wait for the
# device *and* its event node (bounded, ~2 s).
power_button_event() {
    awk '/^N: Name="Power Button"/ { f = 1 }
         f && /^H: Handlers=/ {
             for (i = 2; i <= NF; i++) if ($i ~ /^event[0-9]+$/) { print $i; exit }
         }
         /^$/ { f = 0 }' /proc/bus/input/devices 2>/dev/null
}
i=0
while :; do
    ev=$(power_button_event)
    if [ -n "$ev" ] && [ -e "/dev/input/$ev" ]; then
        break
    fi
    i=$((i + 1))
    if [ "$i" -ge 40 ]; then
        echo "VIRTDECK-WARN no power button input device"
        break
    fi
    usleep 50000
done

# Built-in map: KEY_POWER -> PWRF/00000080 -> /etc/acpi/PWRF/00000080 (poweroff -f).
acpid -c /etc/acpi -l /var/log/acpid.log -p /var/run/acpid.pid ||
    echo "VIRTDECK-WARN acpid failed"

CR=$(printf '\r')

run_cmd() {
    c=$1
    case "$c" in
        "") ;;
        ping) echo "VIRTDECK-PONG" ;;
        reboot) reboot -f ;;
        poweroff) poweroff -f ;;
        panic) echo c >/proc/sysrq-trigger ;;
        "sh "*)
            sh -c "${c#sh }" </dev/null
            echo "VIRTDECK-DONE rc=$?"
            ;;
        *) echo "VIRTDECK-UNKNOWN $c" ;;
    esac
}

read -r up _ </proc/uptime
echo "VIRTDECK-GUEST-READY uptime=$up kernel=$(uname -r)"

# A subshell: a failed redirection must not end PID 1.
(
    exec 3</dev/tty1 || exit 0
    echo "VIRTDECK-GUEST-READY uptime=$up kernel=$(uname -r)" >/dev/tty1
    while :; do
        if read -r line <&3; then
            run_cmd "${line%"$CR"}"
        else
            sleep 1
        fi
    done
) 2>/dev/null &

# virtdeck.cmd=<word> or virtdeck.cmd="<words>" on the kernel command line.
read -r cmdline </proc/cmdline
case " $cmdline" in
    *' virtdeck.cmd="'*)
        rest=${cmdline#*virtdeck.cmd=\"}
        run_cmd "${rest%%\"*}"
        ;;
    *' virtdeck.cmd='*)
        rest=${cmdline#*virtdeck.cmd=}
        run_cmd "${rest%% *}"
        ;;
esac

while :; do
    if read -r line; then
        run_cmd "${line%"$CR"}"
    else
        # EOF/error on the console: never exit (PID 1), never spin.
        sleep 1
    fi
done
