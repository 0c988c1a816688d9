"""The fake Slack's canned Web API answers: one function per method, shaped like Slack's own."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

BOT_USER_ID = "UBOT"
BOT_ID = "B0BOT"
TEAM_ID = "T0TEST"
TEAM_URL = "https://menotime-test.slack.com/"


class _Fake(Protocol):
    """What a canned answer uses of the FakeSlack answering it: the workspace it describes and the
    timestamps and ids it hands out. Typed structurally because FakeSlack's module imports this one."""

    usergroups: dict[str, list[str]]
    users: dict[str, dict[str, Any]]
    channels: dict[str, dict[str, Any]]

    @property
    def url(self) -> str: ...

    def _next_ts(self) -> str: ...

    def _next_id(self, prefix: str) -> str: ...


def _auth_test(fake: _Fake, params: dict[str, Any]) -> dict[str, Any]:
    return {
        "ok": True,
        "url": TEAM_URL,
        "team": "MenoTime Test",
        "user": "menotime-ops",
        "team_id": TEAM_ID,
        "user_id": BOT_USER_ID,
        "bot_id": BOT_ID,
        "is_enterprise_install": False,
    }


def _message(params: dict[str, Any], ts: str) -> dict[str, Any]:
    message: dict[str, Any] = {
        "type": "message",
        "user": BOT_USER_ID,
        "bot_id": BOT_ID,
        "text": params.get("text", ""),
        "ts": ts,
    }
    for name in ("blocks", "attachments", "thread_ts", "metadata"):
        if name in params:
            message[name] = params[name]
    return message


def _needs_channel_and_content(params: dict[str, Any]) -> dict[str, Any] | None:
    """Slack's own validation for posting; catches handlers that lose the channel or the text."""
    if not params.get("channel"):
        return {"ok": False, "error": "channel_not_found"}
    if not any(params.get(k) for k in ("text", "blocks", "attachments")):
        return {"ok": False, "error": "no_text"}
    return None


def _chat_post_message(fake: _Fake, params: dict[str, Any]) -> dict[str, Any]:
    invalid = _needs_channel_and_content(params)
    if invalid is not None:
        return invalid
    ts = fake._next_ts()
    return {"ok": True, "channel": params["channel"], "ts": ts, "message": _message(params, ts)}


def _chat_post_ephemeral(fake: _Fake, params: dict[str, Any]) -> dict[str, Any]:
    invalid = _needs_channel_and_content(params)
    if invalid is not None:
        return invalid
    if not params.get("user"):
        return {"ok": False, "error": "user_not_in_channel"}
    return {"ok": True, "message_ts": fake._next_ts()}


def _chat_update(fake: _Fake, params: dict[str, Any]) -> dict[str, Any]:
    channel, ts = params.get("channel"), params.get("ts")
    if not channel:
        return {"ok": False, "error": "channel_not_found"}
    if not ts:
        return {"ok": False, "error": "message_not_found"}
    return {
        "ok": True,
        "channel": channel,
        "ts": ts,
        "text": params.get("text", ""),
        "message": _message(params, str(ts)),
    }


def _chat_delete(fake: _Fake, params: dict[str, Any]) -> dict[str, Any]:
    return {"ok": True, "channel": params.get("channel"), "ts": params.get("ts")}


def _views_open(fake: _Fake, params: dict[str, Any]) -> dict[str, Any]:
    view = params.get("view")
    view = dict(view) if isinstance(view, dict) else {}
    view.setdefault("id", fake._next_id("V"))
    view.setdefault("team_id", TEAM_ID)
    view.setdefault("app_id", "A0TEST")
    view.setdefault("bot_id", BOT_ID)
    return {"ok": True, "view": view}


def _conversations_info(fake: _Fake, params: dict[str, Any]) -> dict[str, Any]:
    channel_id = str(params.get("channel", ""))
    if not channel_id:
        return {"ok": False, "error": "channel_not_found"}
    channel: dict[str, Any] = {
        "id": channel_id,
        "name": f"channel-{channel_id.lower()}",
        "is_channel": True,
        "is_private": False,
        "is_archived": False,
        "is_member": True,
        "created": 1_700_000_000,
    }
    channel.update(fake.channels.get(channel_id, {}))
    return {"ok": True, "channel": channel}


def _users_info(fake: _Fake, params: dict[str, Any]) -> dict[str, Any]:
    user_id = str(params.get("user", ""))
    if not user_id:
        return {"ok": False, "error": "user_not_found"}
    name = f"user-{user_id.lower()}"
    user: dict[str, Any] = {
        "id": user_id,
        "team_id": TEAM_ID,
        "name": name,
        "real_name": name,
        "deleted": False,
        "is_bot": user_id == BOT_USER_ID,
        "tz": "UTC",
        "tz_offset": 0,
        "profile": {"real_name": name, "display_name": name},
    }
    user.update(fake.users.get(user_id, {}))
    return {"ok": True, "user": user}


def _usergroups_users_list(fake: _Fake, params: dict[str, Any]) -> dict[str, Any]:
    group = params.get("usergroup")
    if not isinstance(group, str) or group not in fake.usergroups:
        return {"ok": False, "error": "no_such_subteam"}
    return {"ok": True, "users": list(fake.usergroups[group])}


def _files_get_upload_url(fake: _Fake, params: dict[str, Any]) -> dict[str, Any]:
    file_id = fake._next_id("F")
    return {"ok": True, "upload_url": fake.url + f"upload/{file_id}", "file_id": file_id}


def _files_complete_upload(fake: _Fake, params: dict[str, Any]) -> dict[str, Any]:
    files = params.get("files")
    entries = files if isinstance(files, list) else []
    return {
        "ok": True,
        "files": [{"id": f.get("id"), "title": f.get("title") or ""} for f in entries if isinstance(f, dict)],
    }


def _reactions_add(fake: _Fake, params: dict[str, Any]) -> dict[str, Any]:
    return {"ok": True}


_API_HANDLERS: dict[str, Callable[[_Fake, dict[str, Any]], dict[str, Any]]] = {
    "auth.test": _auth_test,
    "chat.postMessage": _chat_post_message,
    "chat.postEphemeral": _chat_post_ephemeral,
    "chat.update": _chat_update,
    "chat.delete": _chat_delete,
    "reactions.add": _reactions_add,
    "views.open": _views_open,
    "views.push": _views_open,
    "views.update": _views_open,
    "conversations.info": _conversations_info,
    "users.info": _users_info,
    "usergroups.users.list": _usergroups_users_list,
    "files.getUploadURLExternal": _files_get_upload_url,
    "files.completeUploadExternal": _files_complete_upload,
}
