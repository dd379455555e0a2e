"""A TCP proxy for fault tests, and a Kafka cluster whose clients reach it only through
such proxies, so a test can cut the network between the services and the brokers.

`TcpProxy.cut()` drops every open connection and refuses new ones (the broker looks gone,
as behind a failed link or firewall); `restore()` lets connections through again. The
proxy runs its own event loop in a thread, so blocking test code does not stall it.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading

from shared.devstack.kafka import KafkaCluster, Node, free_port


class TcpProxy:
    def __init__(self, target_port: int, *, port: int | None = None, host: str = "127.0.0.1"):
        self.host, self.target_port = host, target_port
        self.port = port or free_port()
        self.loop = asyncio.new_event_loop()
        self.server: asyncio.AbstractServer | None = None
        self.links: set[asyncio.StreamWriter] = set()
        self.accepted = 0
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> TcpProxy:
        self.thread.start()
        self._call(self._listen())
        return self

    def cut(self) -> None:
        """Drop every connection and refuse new ones until restore()."""
        self._call(self._cut())

    def restore(self) -> None:
        self._call(self._listen())

    def stop(self) -> None:
        if self.thread.is_alive():
            self._call(self._shutdown())
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)
        self.loop.close()

    def _call(self, coro) -> None:
        asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    async def _listen(self) -> None:
        if self.server is None:
            self.server = await asyncio.start_server(self._link, self.host, self.port)

    async def _cut(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None
        for w in list(self.links):
            w.transport.abort()
        self.links.clear()

    async def _shutdown(self) -> None:
        await self._cut()
        rest = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for t in rest:
            t.cancel()
        await asyncio.gather(*rest, return_exceptions=True)

    async def _link(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        try:
            up_reader, up_writer = await asyncio.open_connection(self.host, self.target_port)
        except OSError:  # the broker behind is down: so is this connection
            writer.transport.abort()
            return
        pair = {writer, up_writer}
        self.links |= pair

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            for w in pair:  # either side gone: both go
                w.transport.abort()

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))
        self.links -= pair


class ProxiedKafkaCluster(KafkaCluster):
    """A KafkaCluster whose clients connect through one TcpProxy per node.

    Each node gets a second listener (EXTERNAL) that advertises its proxy's port, so the
    metadata a client receives names proxies only; the brokers talk to each other and to
    the controllers directly. `cut()` / `restore()` act on every proxy at once.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.proxies: dict[int, TcpProxy] = {}
        self._external: dict[int, int] = {}

    @property
    def bootstrap(self) -> str:
        return ",".join(self.proxies[n.node_id].address for n in self.nodes)

    def properties(self, node: Node) -> dict[str, str]:
        props = super().properties(node)
        external = self._external.setdefault(node.node_id, free_port())
        if node.node_id not in self.proxies:
            self.proxies[node.node_id] = TcpProxy(external).start()
        front = self.proxies[node.node_id].port
        props["listeners"] += f",EXTERNAL://127.0.0.1:{external}"
        props["advertised.listeners"] += f",EXTERNAL://127.0.0.1:{front}"
        props["listener.security.protocol.map"] += ",EXTERNAL:PLAINTEXT"
        return props

    def cut(self) -> None:
        for p in self.proxies.values():
            p.cut()

    def restore(self) -> None:
        for p in self.proxies.values():
            p.restore()

    def stop(self) -> None:
        super().stop()
        for p in self.proxies.values():
            p.stop()
        self.proxies.clear()
