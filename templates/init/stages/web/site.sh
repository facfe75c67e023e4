#!/bin/sh
# web's site: nginx serving fixtures/site/index.html. The stage runs in web's root, offline; its
# content and its fixtures are its cache key, so editing either rebuilds it (and nothing else).
# lab: packages=nginx-light
# lab: fixtures=site/index.html
set -e
install -D -m 644 "$LAB_FIXTURES/site/index.html" /var/www/html/index.html
systemctl enable nginx
