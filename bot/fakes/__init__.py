"""Local stand-ins for Slack and SNS, for the benchmarks (bench/) and the tests; never used by
`serve` in production.

A fake Slack Web API served on 127.0.0.1 (``slack_api``; how it reads and records a request in
``slack_requests``, its canned answers in ``slack_answers``), Slack's request signing
(``slack_signing``), SNS messages signed with a key made on the spot (``sns_signer``),
`menotime-bot serve` started as a child process against the AWS simulator and the fake Slack
(``served``), and the hostile inputs the hardening is checked with (``hostile``). Everything here
runs offline.
"""
