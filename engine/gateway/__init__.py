"""The viewer WebSocket gateway (socket I/O, wsproto)."""
