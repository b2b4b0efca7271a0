"""Redis: the client, key names, the Lua script registry and the `Store` features call."""
