#!/usr/bin/env python3
"""A TCP proxy on loopback that delays every byte by the same time each way, order kept:
benches/replicated.sh puts one before each NATS server for the replicated node
(NATS_DELAY), as if the node were that far from the servers.

    python3 benches/delay_proxy.py LISTEN_PORT TARGET_PORT DELAY_MS
"""
import asyncio
import sys


async def pipe(reader, writer, delay):
    loop = asyncio.get_running_loop()
    try:
        while True:
            data = await reader.read(1 << 16)
            if not data:
                break
            # Every chunk goes out `delay` after it came: later chunks after earlier ones.
            loop.call_at(loop.time() + delay, writer.write, data)
    finally:
        await asyncio.sleep(delay)
        writer.close()


async def main(listen, target, delay):
    async def accept(r, w):
        try:
            tr, tw = await asyncio.open_connection("127.0.0.1", target)
        except OSError:
            w.close()
            return
        await asyncio.gather(pipe(r, tw, delay), pipe(tr, w, delay), return_exceptions=True)

    server = await asyncio.start_server(accept, "127.0.0.1", listen)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]) / 1000.0))
