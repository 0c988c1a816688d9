"""Local stand-ins for Slack, so tests exercise real HTTP and real signatures without the network."""
