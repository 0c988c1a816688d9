"""Packaging: the Dockerfile (read, since no Docker engine runs here), the lock files against the
running environment, and the Slack app manifest."""

from __future__ import annotations

import fnmatch
import json
import os
import re
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import metadata
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
LOCK_FILES = ("requirements.lock", "requirements-dev.lock")


# ------------------------------------------------------------------------------- Dockerfile


@dataclass(frozen=True)
class Instruction:
    stage: int  # index of the FROM it belongs to
    keyword: str
    args: str


def _instructions(text: str) -> list[Instruction]:
    """Docker's logical lines: comments dropped, backslash continuations joined."""
    logical: list[str] = []
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#") or (not line and not current):
            continue
        if line.endswith("\\"):
            current += line[:-1].strip() + " "
            continue
        logical.append((current + line).strip())
        current = ""
    if current:
        logical.append(current.strip())

    instructions: list[Instruction] = []
    stage = -1
    for line in logical:
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            stage += 1
        instructions.append(Instruction(stage, keyword, args.strip()))
    return instructions


@pytest.fixture(scope="module")
def dockerfile() -> list[Instruction]:
    return _instructions((ROOT / "Dockerfile").read_text(encoding="utf-8"))


def _final(dockerfile: list[Instruction], keyword: str) -> list[Instruction]:
    last_stage = max(i.stage for i in dockerfile)
    return [i for i in dockerfile if i.stage == last_stage and i.keyword == keyword]


def _env(dockerfile: list[Instruction]) -> dict[str, str]:
    values: dict[str, str] = {}
    for instruction in _final(dockerfile, "ENV"):
        for name, value in re.findall(r"(\w+)=(\S+)", instruction.args):
            values[name] = value
    return values


def test_dockerfile_is_multi_stage_on_python_311_slim(dockerfile: list[Instruction]) -> None:
    froms = [i.args for i in dockerfile if i.keyword == "FROM"]
    assert len(froms) >= 2, "builder and runtime stages"
    args = {
        m.group(1): m.group(2)
        for i in dockerfile
        if i.keyword == "ARG"
        for m in [re.match(r"(\w+)=(\S+)", i.args)]
        if m
    }
    bases = [
        re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), f.split()[0]) for f in froms
    ]
    assert all(base == "python:3.11-slim" for base in bases), bases
    assert re.search(r"\bAS\s+builder\b", froms[0], re.IGNORECASE)
    copies = [i.args for i in _final(dockerfile, "COPY")]
    assert any(c.startswith("--from=builder") for c in copies), "the runtime takes the venv from the builder"


def test_dockerfile_installs_the_lock_then_the_project_without_deps(dockerfile: list[Instruction]) -> None:
    runs = [i.args for i in dockerfile if i.stage == 0 and i.keyword == "RUN"]
    lock = next(n for n, r in enumerate(runs) if re.search(r"pip install (.* )?-r requirements\.lock\b", r))
    project = next(
        n for n, r in enumerate(runs) if re.search(r"pip install (.* )?--no-deps (.* )?\.(\s|$)", r)
    )
    assert lock < project
    # Nothing in the runtime stage may install packages past the lock.
    assert not any("pip install" in i.args for i in _final(dockerfile, "RUN"))


def test_dockerfile_copies_every_package_the_project_ships(dockerfile: list[Instruction]) -> None:
    """`pip install .` silently leaves out a package whose folder was not copied in."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {
        p.name
        for p in ROOT.iterdir()
        if (p / "__init__.py").is_file() and any(fnmatch.fnmatch(p.name, pattern) for pattern in patterns)
    }
    assert packages >= {"bot", "handlers"}
    sources: set[str] = set()
    for instruction in dockerfile:
        if instruction.keyword == "COPY" and not instruction.args.startswith("--from"):
            sources.update(s.rstrip("/").removeprefix("./") for s in instruction.args.split()[:-1])
    assert packages <= sources, f"not copied: {sorted(packages - sources)}"
    assert {"requirements.lock", "pyproject.toml"} <= sources
    for source in sources:
        assert (ROOT / source).exists(), f"COPY {source}: no such file in the project"
    ignored = [
        p.strip()
        for p in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if p.strip() and not p.startswith("#")
    ]
    for source in sources:
        assert not any(fnmatch.fnmatch(source, pattern) for pattern in ignored), (
            f"{source} is in .dockerignore"
        )


def test_dockerignore_keeps_local_state_out_of_the_context() -> None:
    ignored = {p.strip() for p in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()}
    assert {".venv", ".git", "*.db", ".pytest_cache", ".env"} <= ignored


def test_dockerfile_runs_as_a_non_root_user(dockerfile: list[Instruction]) -> None:
    users = _final(dockerfile, "USER")
    assert users, "the runtime stage must switch to a non-root USER"
    user = users[-1].args.split(":")[0]
    assert user not in {"root", "0"}
    assert user == "10001"
    setup = " ".join(i.args for i in _final(dockerfile, "RUN"))
    assert "--uid 10001" in setup and "chown 10001:10001 /data" in setup


def test_dockerfile_runtime_settings(dockerfile: list[Instruction]) -> None:
    env = _env(dockerfile)
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["PYTHONUNBUFFERED"] == "1"
    assert env["DATABASE_URL"].startswith("sqlite:////data/"), "the store lives on the writable volume"
    assert any("/data" in i.args for i in _final(dockerfile, "VOLUME"))
    assert [i.args for i in _final(dockerfile, "EXPOSE")] == ["3000"]
    assert json.loads(_final(dockerfile, "ENTRYPOINT")[-1].args) == ["menotime-bot"]
    assert json.loads(_final(dockerfile, "CMD")[-1].args) == ["serve"]


def test_the_entrypoint_is_the_installed_cli_with_serve() -> None:
    scripts = {ep.name: ep.value for ep in metadata.entry_points(group="console_scripts")}
    assert scripts.get("menotime-bot") == "handlers.cli:main"
    from handlers.cli import cli

    assert "serve" in cli.commands


class _Health(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        code = self.status if self.path == "/healthz" else 404
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[tuple[ThreadingHTTPServer, type[_Health]]]:
    handler = type("Health", (_Health,), {"status": 200})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server, handler
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def _healthcheck_argv(dockerfile: list[Instruction]) -> list[str]:
    checks = _final(dockerfile, "HEALTHCHECK")
    assert len(checks) == 1
    _, _, command = checks[0].args.partition("CMD ")
    argv = json.loads(command)  # exec form: no shell needed in the image
    assert isinstance(argv, list) and argv[0] == "python"
    return argv


def test_healthcheck_requests_healthz_with_python_only(dockerfile: list[Instruction]) -> None:
    argv = _healthcheck_argv(dockerfile)
    code = " ".join(argv)
    assert "/healthz" in code and "urllib" in code
    assert not re.search(r"\b(curl|wget)\b", code), "python:slim has neither"
    assert "3000" in code


def test_healthcheck_command_passes_on_200_and_fails_otherwise(
    dockerfile: list[Instruction], health_server: tuple[ThreadingHTTPServer, type[_Health]]
) -> None:
    """Run the HEALTHCHECK's own command against a local /healthz, as Docker would."""
    server, handler = health_server
    argv = [sys.executable, *_healthcheck_argv(dockerfile)[1:]]
    env = {**os.environ, "PORT": str(server.server_address[1])}

    assert subprocess.run(argv, check=False, env=env, capture_output=True, timeout=30).returncode == 0
    handler.status = 503
    assert subprocess.run(argv, check=False, env=env, capture_output=True, timeout=30).returncode != 0
    server_port = env["PORT"]
    server.shutdown()
    server.server_close()
    assert (
        subprocess.run(
            argv, check=False, env={**env, "PORT": server_port}, capture_output=True, timeout=30
        ).returncode
        != 0
    )


# ------------------------------------------------------------------------------- lock files


def _pins(lock: str) -> list[Requirement]:
    pins = []
    for raw in (ROOT / lock).read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        requirement = Requirement(line)
        specifiers = list(requirement.specifier)
        assert len(specifiers) == 1 and specifiers[0].operator == "==", f"{lock}: {line} is not an exact pin"
        pins.append(requirement)
    assert pins, f"{lock} pins nothing"
    return pins


@pytest.mark.parametrize("lock", LOCK_FILES)
def test_every_locked_package_is_installed_at_its_pinned_version(lock: str) -> None:
    """The environment the tests run in is the one the lock describes, so the lock cannot drift."""
    wrong = []
    for requirement in _pins(lock):
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        pinned = next(iter(requirement.specifier)).version
        try:
            installed = metadata.version(requirement.name)
        except metadata.PackageNotFoundError:
            installed = "not installed"
        if installed != pinned:
            wrong.append(f"{requirement.name}: locked {pinned}, installed {installed}")
    assert not wrong, "re-install from the lock (or re-lock):\n" + "\n".join(wrong)


def test_the_locks_agree_and_cover_the_declared_dependencies() -> None:
    runtime = {canonicalize_name(r.name): str(r.specifier) for r in _pins("requirements.lock")}
    dev = {canonicalize_name(r.name): str(r.specifier) for r in _pins("requirements-dev.lock")}
    differing = {name: (pin, dev.get(name)) for name, pin in runtime.items() if dev.get(name) != pin}
    assert not differing, f"requirements.lock and requirements-dev.lock disagree: {differing}"

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    declared = {canonicalize_name(Requirement(d).name) for d in project["dependencies"]}
    assert declared <= runtime.keys(), f"declared but not locked: {sorted(declared - runtime.keys())}"
    extras = {canonicalize_name(Requirement(d).name) for d in project["optional-dependencies"]["dev"]}
    assert extras <= dev.keys(), f"dev extras not in requirements-dev.lock: {sorted(extras - dev.keys())}"


# ------------------------------------------------------------------------------- Slack manifest


@pytest.fixture(scope="module")
def manifest() -> dict:
    data = yaml.safe_load((ROOT / "slack-app-manifest.yaml").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def test_manifest_declares_menotime_on_the_bolt_endpoint(manifest: dict) -> None:
    commands = {c["command"]: c for c in manifest["features"]["slash_commands"]}
    menotime = commands["/menotime"]
    assert menotime["url"].startswith("https://") and menotime["url"].endswith("/slack/events")
    assert menotime["should_escape"] is False
    assert menotime["description"] and menotime["usage_hint"]
    assert manifest["features"]["bot_user"]["display_name"]


def test_manifest_sends_interactivity_and_events_to_the_same_url(manifest: dict) -> None:
    url = manifest["features"]["slash_commands"][0]["url"]
    settings = manifest["settings"]
    assert settings["interactivity"]["is_enabled"] is True
    assert settings["interactivity"]["request_url"] == url
    assert settings["event_subscriptions"]["request_url"] == url
    assert settings["socket_mode_enabled"] is False
    assert settings["org_deploy_enabled"] is False
    assert settings["token_rotation_enabled"] is False


def test_manifest_asks_for_the_scopes_the_bot_uses(manifest: dict) -> None:
    scopes = set(manifest["oauth_config"]["scopes"]["bot"])
    assert {"commands", "chat:write", "usergroups:read"} <= scopes
    assert {"chat:write.public", "users:read", "files:write", "reactions:write"} <= scopes
    assert len(scopes) == len(manifest["oauth_config"]["scopes"]["bot"]), "a scope is listed twice"


def test_manifest_respects_slack_length_limits(manifest: dict) -> None:
    info = manifest["display_information"]
    assert 0 < len(info["name"]) <= 35
    assert len(info.get("description", "")) <= 140
    if "long_description" in info:
        assert 174 <= len(info["long_description"]) <= 4000
    bot_name = manifest["features"]["bot_user"]["display_name"]
    assert re.fullmatch(r"[a-z0-9._-]{1,80}", bot_name), "Slack display names are lower case, no spaces"
