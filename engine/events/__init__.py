"""The host event stream: a capped Redis Stream per room, read with consumer groups."""
