"""Where the recorded AWS and Slack payloads live: MENOTIME_FIXTURES, else `../shared/fixtures`
beside the checkout.

One place for the tests and the benchmarks, so that a copy of the tests run from elsewhere (mutmut
runs them from `mutants/`) can point at them with MENOTIME_FIXTURES, and so that CI can insist they
are there (tests/conftest.py).
"""

from __future__ import annotations

import os
from pathlib import Path

FIXTURES = Path(
    os.environ.get("MENOTIME_FIXTURES") or Path(__file__).resolve().parents[3] / "shared" / "fixtures"
)
ALARM_FIXTURE = FIXTURES / "cloudwatch" / "real-signed-metric-alarm-sigv1.json"
"""A real AWS-signed CloudWatch alarm notification."""
