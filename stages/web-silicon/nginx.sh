#!/bin/sh
# web-silicon: the web server, as the distribution ships it. A shell stage, as teams write them:
# the header declares what a TypeScript stage declares; the script runs in the machine.
# lab: packages=nginx openssl
set -e
systemctl enable nginx
