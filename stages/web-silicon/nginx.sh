#!/bin/sh
# web-silicon: the web server, as the distribution ships it. A shell stage, as teams write them:
# the header declares what a TypeScript stage declares (web boots once nginx serves, on 443 once
# the site stage is applied: ready);
# the script runs in the machine.
# lab: packages=nginx openssl
# lab: ready=unit:nginx
# lab: ready=port:443
set -e
systemctl enable nginx
