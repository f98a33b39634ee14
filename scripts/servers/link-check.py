#!/usr/bin/env python3
"""What an emulated link really gives: round-trip time and throughput with 1 and with
several parallel streams, measured through it to a sink this script runs.

    link-check.py SINK_PORT LINK_PORT [STREAMS [SECONDS]]

Starts an echo-and-sink server on 127.0.0.1:SINK_PORT; the link (a delay proxy in front
of SINK_PORT) listens on LINK_PORT. Prints one line per measurement.
"""
import socket
import statistics
import sys
import threading
import time


def serve(port):
    listener = socket.create_server(("127.0.0.1", port))

    def one(conn):
        with conn:
            mode = conn.recv(1)
            if mode == b"E":  # echo single bytes
                while (b := conn.recv(1)):
                    conn.sendall(b)
            elif mode == b"S":  # count until the sender stops, then report the count
                n = 0
                while (b := conn.recv(1 << 16)):
                    n += len(b)
                conn.sendall(str(n).encode())

    def accept():
        while True:
            conn, _ = listener.accept()
            threading.Thread(target=one, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()


def rtt(port):
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.sendall(b"E")
        times = []
        for _ in range(10):
            t = time.monotonic()
            s.sendall(b"x")
            s.recv(1)
            times.append(time.monotonic() - t)
    return statistics.median(times)


def throughput(port, streams, seconds):
    arrived = []

    def send():
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(b"S")
            block = bytes(1 << 16)
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                s.sendall(block)
            s.shutdown(socket.SHUT_WR)
            arrived.append(int(s.recv(64)))

    start = time.monotonic()
    threads = [threading.Thread(target=send) for _ in range(streams)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(arrived) / (time.monotonic() - start)


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__.strip().splitlines()[2].strip())
    sink, link = int(sys.argv[1]), int(sys.argv[2])
    streams = int(sys.argv[3]) if len(sys.argv) > 3 else 4
    seconds = float(sys.argv[4]) if len(sys.argv) > 4 else 4
    serve(sink)
    time.sleep(0.2)
    print(f"round trip: {rtt(link) * 1000:.1f} ms")
    for n in (1, streams):
        print(f"{n} stream(s): {throughput(link, n, seconds) * 8 / 1e6:.0f} Mbit/s")
