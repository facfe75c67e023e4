#!/usr/bin/python3
# {{ ansible_managed }}
"""concours, in small: the machines of mdb as JSON at /machines, a greeting at /."""
import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg2


def machines():
    with psycopg2.connect(host=os.environ['DB_HOST'], dbname='mdb', user='concours', password=os.environ['DB_PASSWORD'], connect_timeout=5) as db:
        with db.cursor() as cursor:
            cursor.execute('SELECT hostname, mac, ip, mtype FROM machines ORDER BY hostname')
            return [dict(zip(('hostname', 'mac', 'ip', 'mtype'), row)) for row in cursor.fetchall()]


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == '/machines':
            body, kind = json.dumps(machines()).encode(), 'application/json'
        elif self.path == '/':
            body, kind = b'Prologin concours\n', 'text/plain'
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header('Content-Type', kind)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)


ThreadingHTTPServer(('127.0.0.1', int(os.environ['PORT'])), Handler).serve_forever()
