"""The control plane: one command registry (`registry.py`, commands in `commands/`) served over
the control WebSocket, the Unix socket, the HTTP API and `engine ctl` (one module each)."""
