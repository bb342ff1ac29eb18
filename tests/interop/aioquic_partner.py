"""A partner network built on aioquic, a QUIC implementation we did not write: it connects to
Corridor with ALPN corridor/1 and a client certificate, opens a lane (a bidirectional
stream), sends native frames on it and prints what comes back.

    aioquic_partner.py HOST PORT CA CERT KEY FRAMES_HEX...

Each FRAMES_HEX is one whole native frame (header and body) as hex; it is sent, and the next
whole frame that comes back is printed as hex, one a line, in order. Exits non-zero on any
failure, saying why.
"""
import asyncio
import ssl
import sys

from aioquic.asyncio import connect
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import ConnectionTerminated, StreamDataReceived

HEADER = 20


class Partner(QuicConnectionProtocol):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.buf = b""
        self.frames = asyncio.Queue()
        self.closed = None

    def quic_event_received(self, event):
        if isinstance(event, StreamDataReceived):
            self.buf += event.data
            # The native header (SPEC.md §2.1): magic (2), version, flags, header length (2),
            # reserved (2), body length (4), correlation (8); big-endian.
            while len(self.buf) >= HEADER:
                header_len = int.from_bytes(self.buf[4:6], "big")
                body_len = int.from_bytes(self.buf[8:12], "big")
                total = header_len + body_len
                if len(self.buf) < total:
                    break
                self.frames.put_nowait(self.buf[:total])
                self.buf = self.buf[total:]
        elif isinstance(event, ConnectionTerminated):
            self.closed = event.reason_phrase or str(event.error_code)
            self.frames.put_nowait(None)


async def main():
    host, port, ca, cert, key = sys.argv[1:6]
    frames = [bytes.fromhex(f) for f in sys.argv[6:]]
    config = QuicConfiguration(is_client=True, alpn_protocols=["corridor/1"], server_name="localhost")
    config.load_verify_locations(ca)
    config.load_cert_chain(cert, key)
    config.verify_mode = ssl.CERT_REQUIRED
    async with connect(host, int(port), configuration=config, create_protocol=Partner) as client:
        stream = client._quic.get_next_available_stream_id()
        for f in frames:
            client._quic.send_stream_data(stream, f, end_stream=False)
            client.transmit()
            got = await asyncio.wait_for(client.frames.get(), timeout=10)
            if got is None:
                sys.exit(f"connection closed: {client.closed}")
            print(got.hex())
        client.close()


asyncio.run(main())
