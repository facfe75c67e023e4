#!/bin/sh
# What web's roles install, from the image's mirror through the host's network: Ansible's apt
# tasks then find them installed (the lab network reaches no mirror).
# lab: packages=nginx-light python3-psycopg2 curl
true
