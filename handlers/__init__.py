"""Thin adapters: Slack (HTTP and Socket Mode), health and metrics endpoints, the server CLI."""
