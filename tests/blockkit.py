"""Slack's Block Kit limits, checked on every rendered message the tests produce."""

from __future__ import annotations

from typing import Any

MAX_BLOCKS = 50
MAX_SECTION_TEXT = 3000
MAX_FIELDS, MAX_FIELD_TEXT = 10, 2000
MAX_CONTEXT_ELEMENTS = 10


def assert_valid_message(message: dict[str, Any]) -> None:
    assert isinstance(message.get("text"), str) and message["text"], "a fallback text is required"
    blocks = message.get("blocks", [])
    assert 0 < len(blocks) <= MAX_BLOCKS, f"{len(blocks)} blocks"
    for block in blocks:
        kind = block.get("type")
        assert kind in {"section", "context", "divider", "header", "actions"}, block
        if kind == "section":
            assert "text" in block or "fields" in block, block
            if "text" in block:
                assert block["text"]["type"] in {"mrkdwn", "plain_text"}
                assert 0 < len(block["text"]["text"]) <= MAX_SECTION_TEXT
            for field in block.get("fields", []):
                assert 0 < len(field["text"]) <= MAX_FIELD_TEXT
            assert len(block.get("fields", [])) <= MAX_FIELDS
        if kind == "context":
            assert 0 < len(block["elements"]) <= MAX_CONTEXT_ELEMENTS
            for element in block["elements"]:
                assert element["text"], block
