#!/usr/bin/python3
"""Relays the frames of a machine's link, holding those towards the machine: link delay on a
kernel without netem (lib/network/relay.ts plumbs it in and takes it out).

usage: link-relay.py RECORD MACHINE_PORT RELAY_PORT DELAY_MS JITTER_MS LOSS_PERCENT

RECORD is the lab's file about this relay, named here so that the process carries the lab's name.

MACHINE_PORT is the host side of the machine's veth, RELAY_PORT one end of a veth pair whose
other end is in the machine's bridge. Frames from the machine go on at once; frames towards it
wait DELAY_MS (plus or minus up to JITTER_MS) and LOSS_PERCENT of them are dropped. Frames are
read and written with their virtio-net header, so that the kernel's offloads (segmentation,
checksums left to the card) pass through unchanged. Ends on SIGTERM, or when a port goes away.
"""
import heapq
import random
import select
import socket
import sys
import time

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_VNET_HDR = 15
PACKET_OUTGOING = 4
LARGEST_FRAME = 65536 + 1024  # a segmentation-offloaded frame, its headers and the virtio-net header


def open_port(name):
    port = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    port.setsockopt(SOL_PACKET, PACKET_VNET_HDR, 1)
    port.bind((name, ETH_P_ALL))
    port.setblocking(False)
    return port


def main():
    machine_port, relay_port, delay_ms, jitter_ms, loss_percent = sys.argv[2:7]
    delay = float(delay_ms) / 1000
    jitter = float(jitter_ms) / 1000
    loss = float(loss_percent) / 100
    to_machine = open_port(machine_port)
    to_bridge = open_port(relay_port)
    print(f"relaying {machine_port} <-> {relay_port}: delay {delay_ms} ms, jitter {jitter_ms} ms, loss {loss_percent} %", flush=True)
    held = []  # (due, sequence, frame): towards the machine, in the order they fall due
    sequence = 0
    while True:
        timeout = max(0.0, held[0][0] - time.monotonic()) if held else None
        readable, _, _ = select.select([to_machine, to_bridge], [], [], timeout)
        for port in readable:
            while True:
                try:
                    frame, address = port.recvfrom(LARGEST_FRAME)
                except BlockingIOError:
                    break
                if address[2] == PACKET_OUTGOING:
                    continue  # what this relay (or the kernel) sent out of the port
                if port is to_machine:
                    send(to_bridge, frame)
                elif random.random() >= loss:
                    sequence += 1
                    due = time.monotonic() + max(0.0, delay + random.uniform(-jitter, jitter))
                    heapq.heappush(held, (due, sequence, frame))
        now = time.monotonic()
        while held and held[0][0] <= now:
            send(to_machine, heapq.heappop(held)[2])


def send(port, frame):
    try:
        port.send(frame)
    except (BlockingIOError, OSError) as error:
        if isinstance(error, BlockingIOError) or error.errno in (105, 90):  # ENOBUFS, EMSGSIZE: dropped, as a full link would
            return
        raise


if __name__ == "__main__":
    try:
        main()
    except OSError as error:  # a port went away: the link was taken back or the lab destroyed
        print(f"relay ended: {error}", flush=True)
        sys.exit(1)
