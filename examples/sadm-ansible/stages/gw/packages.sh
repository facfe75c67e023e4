#!/bin/sh
# What gw's roles install, from the image's mirror through the host's network: Ansible's apt
# tasks then find them installed (the lab network reaches no mirror).
# lab: packages=bind9 bind9-host dnsmasq postgresql python3-psycopg2 ipxe
# dnsmasq would answer DNS beside bind until the dhcpd role configures it: the role enables it.
systemctl disable dnsmasq
