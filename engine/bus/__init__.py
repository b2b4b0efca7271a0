"""Cross-node room messages over Redis pub/sub."""
