"""The MCP door (docs/agents.md): agents' tools and room captions at ``/mcp`` on the HTTP
port, on the ``mcp`` SDK's server (``server.py``) bridged onto the port's aiohttp application
(``asgi.py``, ``door.py``). Imported only when ``mcp.enabled`` (``host.build_doors``)."""
