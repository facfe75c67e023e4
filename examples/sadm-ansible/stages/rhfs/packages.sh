#!/bin/sh
# What rhfs's roles install, from the image's mirror through the host's network: Ansible's apt
# tasks then find them installed (the lab network reaches no mirror). netbase: /etc/services, which
# RPC (showmount, rpcbind) looks up.
# lab: packages=nfs-ganesha nfs-ganesha-vfs netbase
# No NFS in this kernel (a container has no rpc_pipefs): nothing mounts it, so a boot is not degraded for it.
systemctl mask run-rpc_pipefs.mount
