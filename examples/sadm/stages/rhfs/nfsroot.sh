#!/bin/sh
# rhfs: the root SADM's contestant machines boot, /export/nfsroot_ro (SADM exports it over NFS;
# here diskless machines boot it read-only, see the rooms in lab.config.yaml). It is a copy of
# rhfs's own root as it is now (the base image and the system stage: no debootstrap, no download),
# reflinked on a btrfs pool, so that it takes no room until rhfs's root and it part ways.
set -e
root=/export/nfsroot_ro
rm -rf "$root"
mkdir -p "$root"
# Everything but the export itself and what a machine's kernel and systemd mount (left empty below).
# -x: not what lab binds into rhfs for this step (the package cache), nor the host's resolv.conf.
for dir in /*; do
  case "$dir" in
    /export | /proc | /sys | /dev | /run | /tmp) ;;
    *) cp -a -x --reflink=auto "$dir" "$root/" ;;
  esac
done
mkdir -p "$root/proc" "$root/sys" "$root/dev" "$root/run"
mkdir -m 1777 "$root/tmp"
# rhfs's identity is no contestant's: lab binds each machine's own over these (they must exist, as
# mount points of a read-only root). rhfs's networkd files are hidden by each machine's own.
: >"$root/etc/machine-id"
: >"$root/etc/hostname"
: >"$root/etc/resolv.conf"
rm -f "$root"/etc/systemd/network/10-lab-*.network
# What a read-only boot needs: the mount points of SADM's tmpfs list, and logind's state directory
# (systemd-logind fails when it cannot make it).
mkdir -p "$root/home" "$root/var/log" "$root/var/tmp" "$root/var/spool/mail" "$root/var/lib/isolate" "$root/var/lib/lightdm" "$root/var/lib/systemd/linger"
