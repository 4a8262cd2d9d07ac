#!/bin/sh
# /init of the virtdeck test guest (busybox sh, PID 1).  Packed into the
# initramfs by tests/guest/build.py; any change here changes the cache key.
#
# Protocol on the console (ttyS0 via console=ttyS0), one line each:
#   guest -> host  VIRTDECK-GUEST-READY uptime=<s> kernel=<uname -r>   (once per boot)
#   host -> guest  ping | reboot | poweroff | panic | sh <cmd> | agent
#   guest -> host  VIRTDECK-PONG | VIRTDECK-DONE rc=<n> | VIRTDECK-UNKNOWN <line>
#                  | VIRTDECK-AGENT <port>|none
# `agent` starts a stand-in for qemu-guest-agent (the guest has none) on the
# org.qemu.guest_agent.0 virtio port: the handshake and the few commands virtdeck sends.
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

for m in pvpanic pvpanic-mmio evdev button virtio_ring virtio virtio_pci_modern_dev \
         virtio_pci_legacy_dev virtio_pci failover net_failover virtio_net virtio_console; do
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

# --- the stand-in guest agent --------------------------------------------------------

agent_port() {
    for p in /sys/class/virtio-ports/*; do
        if [ "$(cat "$p/name" 2>/dev/null)" = org.qemu.guest_agent.0 ]; then
            echo "/dev/${p##*/}"
            return
        fi
    done
}

# guest-network-get-interfaces from what the kernel says (ip and /sys).
agent_interfaces() {
    sep=''
    printf '['
    for d in /sys/class/net/*; do
        i=${d##*/}
        printf '%s{"name":"%s","hardware-address":"%s","ip-addresses":[' \
            "$sep" "$i" "$(cat "$d/address")"
        ip -o addr show dev "$i" | awk '$3 == "inet" || $3 == "inet6" {
            split($4, a, "/"); t = ($3 == "inet6") ? "ipv6" : "ipv4"
            printf "%s{\"ip-address-type\":\"%s\",\"ip-address\":\"%s\",\"prefix\":%s}",
                (n++ ? "," : ""), t, a[1], a[2] }'
        printf ']}'
        sep=','
    done
    printf ']'
}

agent_serve() {
    # Like qemu-ga: while no host client is connected the port reads end-of-file; wait
    # and read on (the port stays open).
    while :; do
        agent_loop
        usleep 200000
    done
}

agent_loop() {
    while read -r req; do
        case "$req" in
            *guest-sync-delimited*)
                id=$(echo "$req" | sed -n 's/.*"id": *\([0-9]*\).*/\1/p')
                printf '\377{"return": %s}\n' "$id" ;;
            *guest-ping*) echo '{"return": {}}' ;;
            *guest-info*)
                echo '{"return": {"version": "virtdeck-test-agent", "supported_commands": []}}' ;;
            *guest-network-get-interfaces*) printf '{"return": %s}\n' "$(agent_interfaces)" ;;
            *guest-shutdown*) poweroff -f ;;
            *) echo '{"error": {"class": "CommandNotFound", "desc": "not in the test agent"}}' ;;
        esac
    done
}

run_cmd() {
    c=$1
    case "$c" in
        "") ;;
        ping) echo "VIRTDECK-PONG" ;;
        reboot) reboot -f ;;
        poweroff) poweroff -f ;;
        panic) echo c >/proc/sysrq-trigger ;;
        agent)
            port=$(agent_port)
            if [ -n "$port" ]; then
                # one open, read-write: a virtio port takes a single opener
                (agent_serve <>"$port" >&0 2>/dev/null &)
                echo "VIRTDECK-AGENT $port"
            else
                echo "VIRTDECK-AGENT none"
            fi
            ;;
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
