"""Transparent capture with real iptables in network namespaces."""
