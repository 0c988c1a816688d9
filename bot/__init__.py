"""MenoTime Ops core: configuration, commands, policy, storage and operations, free of Slack and HTTP."""
