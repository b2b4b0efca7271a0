"""Adapters from client messages to features, one module per feature. Each module's `register`
adds its handlers to the node's `Dispatcher`."""
