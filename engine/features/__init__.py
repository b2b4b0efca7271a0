"""Room features. Each calls the `Store` and the bus; none touches a socket."""
