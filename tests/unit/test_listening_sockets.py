"""The daemon's and the fakes' listening sockets name TCP, so asyncio turns Nagle off on every
accepted connection; measured before: each small answer waited ~44 ms for a delayed ACK."""

from __future__ import annotations

import asyncio
import socket

from okrsync.api.server import bind


async def test_an_accepted_connection_of_the_daemons_socket_has_nodelay() -> None:
    listening = bind("127.0.0.1", 0)
    seen: list[int] = []

    async def on_connect(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        seen.append(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        writer.close()

    server = await asyncio.start_server(on_connect, sock=listening)
    async with server:
        host, port = listening.getsockname()[:2]
        reader, writer = await asyncio.open_connection(host, port)
        await reader.read()
        writer.close()
    assert seen and seen[0] != 0
