"""Rooms on this node, the broadcaster policy and per-connection outboxes."""
