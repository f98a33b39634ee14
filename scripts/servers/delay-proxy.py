#!/usr/bin/env python3
"""A TCP proxy on 127.0.0.1 that holds every byte back for a fixed time in each direction:
the latency of a long link, for a kernel without netem (the link's rate comes from tbf).

    delay-proxy.py LISTEN_PORT TARGET_PORT ONE_WAY_MS

Bytes are forwarded in the order they came, each once its delay has passed, so the
proxy adds latency without limiting throughput; up to 8 MiB per direction and
connection may be in flight, more than a 200 Mbit/s link holds over 40 ms (1 MB).
"""
import asyncio
import socket
import sys

CHUNK = 64 << 10
IN_FLIGHT = (8 << 20) // CHUNK  # chunks queued per direction


def no_delay(writer):
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


async def pump(reader, writer, delay):
    loop = asyncio.get_running_loop()
    queue = asyncio.Queue(maxsize=IN_FLIGHT)

    async def receive():
        while True:
            data = await reader.read(CHUNK)
            await queue.put((loop.time() + delay, data))
            if not data:
                return

    async def send():
        while True:
            due, data = await queue.get()
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if not data:
                if writer.can_write_eof():
                    writer.write_eof()
                return
            writer.write(data)
            await writer.drain()

    await asyncio.gather(receive(), send())


async def main(listen, target, delay):
    async def handle(client_r, client_w):
        try:
            server_r, server_w = await asyncio.open_connection("127.0.0.1", target)
        except OSError:
            client_w.close()
            return
        no_delay(client_w)
        no_delay(server_w)
        try:
            await asyncio.gather(pump(client_r, server_w, delay), pump(server_r, client_w, delay))
        except (ConnectionError, OSError):
            pass
        finally:
            client_w.close()
            server_w.close()

    server = await asyncio.start_server(handle, "127.0.0.1", listen)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__.strip().splitlines()[2].strip())
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]) / 1000))
