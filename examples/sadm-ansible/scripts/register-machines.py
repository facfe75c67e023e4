#!/usr/bin/env python3
"""SADM's add_to_mdb, as a controller stage: every machine of lab's inventory is registered in
mdb (gw's PostgreSQL) from inside gw, through lab's own CLI ($LAB exec gw -- ...). Run again, it
changes nothing."""
import json
import os
import re
import subprocess

inventory = json.loads(subprocess.run(['ansible-inventory', '-i', os.environ['LAB_INVENTORY'], '--list'], check=True, capture_output=True, text=True).stdout)
rows = []
for host, hostvars in sorted(inventory['_meta']['hostvars'].items()):
    first = next(i for i in hostvars['lab_interfaces'] if i['address'] != 'dhcp')
    mtype = 'user' if host in inventory.get('contestants', {}).get('hosts', []) else 'service'
    values = (host, first['mac'], first['address'], mtype)
    # Names, MACs and addresses lab gives are plain; anything else is refused rather than quoted.
    assert all(re.fullmatch(r'[a-z0-9.:-]+', v) for v in values), values
    rows.append("('%s', '%s', '%s', '%s')" % values)
sql = ('INSERT INTO machines (hostname, mac, ip, mtype) VALUES %s '
       'ON CONFLICT (hostname) DO UPDATE SET mac = EXCLUDED.mac, ip = EXCLUDED.ip, mtype = EXCLUDED.mtype' % ', '.join(rows))
subprocess.run([os.environ['LAB'], 'exec', 'gw', '--', 'runuser', '-u', 'postgres', '--', 'psql', '-v', 'ON_ERROR_STOP=1', '-d', 'mdb', '-c', sql], check=True)
print('registered in mdb: %s' % ', '.join(sorted(inventory['_meta']['hostvars'])))
