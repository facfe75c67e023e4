#!/bin/sh
# What r00p01's roles install, from the image's mirror through the host's network: Ansible's apt
# tasks then find them installed (the lab network reaches no mirror). netbase: /etc/services, which
# RPC (showmount, rpcbind) looks up.
# lab: packages=curl bind9-host busybox nfs-common netbase
# No NFS in this kernel (a container has no rpc_pipefs): nothing mounts it, so a boot is not degraded for it.
systemctl mask run-rpc_pipefs.mount
