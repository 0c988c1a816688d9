"""Scheduled jobs, one module each: plain functions of (settings, gateways, store, clock) returning a report."""
