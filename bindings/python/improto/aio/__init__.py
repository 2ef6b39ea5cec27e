"""asyncio clients for the improto protocols: the same clients as the
blocking ones (:class:`improto.RelayClient`, :class:`improto.RegistryClient`,
:class:`improto.BuddyClient`, :class:`improto.Peer`) as coroutines, on the
sans-I/O codecs and asyncio streams and datagram endpoints. No threads: one
event loop runs hundreds of clients. File downloads
(:meth:`RelayClient.download`) move their bytes on the package's download
thread, never on the loop; their progress and outcome come back to the loop
with ``call_soon_threadsafe``.

Example::

    import asyncio, improto.aio

    async def main(port):
        alice = await improto.aio.RelayClient.connect("alice", port=port)
        bob = await improto.aio.RelayClient.connect("bob", port=port)
        await alice.send("bob", b"hi")      # returns once bob's client has it
        print(await bob.receive())          # forward from="alice" body="hi"
        await alice.close(); await bob.close()
"""

from ._relay import Download, RelayClient
from ._registry import Peer, RegistryClient
from ._buddy import BuddyClient, ChatListener, ChatSession

__all__ = ["RelayClient", "Download", "RegistryClient", "Peer", "BuddyClient", "ChatSession", "ChatListener"]

for _name in __all__:
    globals()[_name].__module__ = __name__
del _name
