#!/usr/bin/env python3
"""A TCP proxy that delays what clients send by a fixed time: an object store's request latency,
in front of a local one.

Garage on loopback answers a GET in well under a millisecond plus its CPU time; a real object
store takes tens of milliseconds to the first byte (S3: commonly 10-30 ms within a region). This
proxy holds every byte a client sends for `--delay-ms` before passing it on (bytes keep their
order; the delay is not cumulative: a byte goes at its arrival time plus the delay), and passes
the answers back at once. So each request waits the delay once, and requests in flight together
overlap their waits, as on a real store; bandwidth is unchanged.

    latency_proxy.py --target 127.0.0.1:3900 --delay-ms 20      # prints the port it listens on

Used by bench/isolation/s3_read_ahead.py --s3-latency-ms.
"""
import argparse
import asyncio
import subprocess
import sys
import time
from pathlib import Path


async def pipe(reader, writer, delay):
    """Copies reader to writer, each piece sent `delay` seconds after it arrived."""
    queue = asyncio.Queue()

    async def receive():
        while True:
            data = await reader.read(1 << 16)
            await queue.put((time.monotonic() + delay, data))
            if not data:
                return

    async def send():
        while True:
            due, data = await queue.get()
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            if not data:
                if writer.can_write_eof():
                    writer.write_eof()
                return
            writer.write(data)
            await writer.drain()

    try:
        await asyncio.gather(receive(), send())
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


async def serve(listen_port, target, delay, ready):
    host, port = target.rsplit(":", 1)

    async def handle(client_reader, client_writer):
        try:
            server_reader, server_writer = await asyncio.open_connection(host, int(port))
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(pipe(client_reader, server_writer, delay),
                             pipe(server_reader, client_writer, 0.0))

    server = await asyncio.start_server(handle, "127.0.0.1", listen_port)
    ready(server.sockets[0].getsockname()[1])
    async with server:
        await server.serve_forever()


class LatencyProxy:
    """Runs this script as a child process; `endpoint` is where clients connect."""

    def __init__(self, target, delay_ms):
        self.process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--target", target,
             "--delay-ms", str(delay_ms)], stdout=subprocess.PIPE, text=True)
        self.port = int(self.process.stdout.readline())
        self.endpoint = f"http://127.0.0.1:{self.port}"

    def stop(self):
        self.process.kill()
        self.process.wait()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", required=True, help="host:port to forward to")
    parser.add_argument("--delay-ms", type=float, required=True)
    parser.add_argument("--port", type=int, default=0, help="port to listen on (0: any)")
    args = parser.parse_args()

    def ready(port):
        print(port, flush=True)

    try:
        asyncio.run(serve(args.port, args.target, args.delay_ms / 1000, ready))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
