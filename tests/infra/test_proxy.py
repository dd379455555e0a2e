"""The TCP proxy: bytes flow through it, a cut drops and refuses connections, a restore
lets them through again. Against a tiny echo server.
"""

import asyncio

import pytest

from tests.infra.proxy import TcpProxy


async def echo_server():
    async def echo(reader, writer):
        while data := await reader.read(1024):
            writer.write(data)
            await writer.drain()
        writer.close()

    return await asyncio.start_server(echo, "127.0.0.1", 0)


async def round_trip(port: int, payload: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(payload)
        await writer.drain()
        return await reader.readexactly(len(payload))
    finally:
        writer.close()


async def test_cut_drops_and_refuses_then_restore_lets_through():
    server = await echo_server()
    proxy = TcpProxy(server.sockets[0].getsockname()[1]).start()
    try:
        assert await round_trip(proxy.port, b"hello") == b"hello"
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        writer.write(b"x")
        assert await reader.readexactly(1) == b"x"
        proxy.cut()
        # The open connection is dropped...
        assert await reader.read(10) == b""
        writer.close()
        # ...and a new one refused.
        with pytest.raises(OSError):
            await round_trip(proxy.port, b"again")
        proxy.restore()
        assert await round_trip(proxy.port, b"back") == b"back"
        assert proxy.accepted == 3
    finally:
        proxy.stop()
        server.close()
        await server.wait_closed()
