"""The mesh data plane: the proxy core (sans-IO HTTP/1.1, server, upstream pool) and routing."""
