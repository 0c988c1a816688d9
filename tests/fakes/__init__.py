"""Test doubles only the tests use (jobs, uvicorn in a thread); the Slack and SNS stand-ins the
benchmarks share are in bot/fakes."""
