"""Try the bot without Discord: `python -m tests.local_discord` starts the local Discord API
emulator the tests use (tests/discord_emulator.py) and `python -m bot run` against it, with
your .env and environment (sources, model back-end, data folder), then lets you type as a
member or a moderator of a test server and prints what the bot posts: messages and edits,
embeds as text, buttons, the threads it opens, and replies only you can see.

Type a message (`@bot ...` mentions the bot), a slash command (`/ask When was it founded?`,
`/config auto-answer channel=#help enabled=true`), or one of the `:` commands (`:help`).
With stdin not a terminal (a script), each line waits for the bot's answer before the next.
The bot's log goes to --log (default: local-discord.log in the current folder).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from bot.settings import PROJECT_ROOT
from tests.discord_emulator import EPHEMERAL, MANAGE_GUILD, MANAGE_MESSAGES, DiscordEmulator, Member

HELP = """Type a message to post it in the current channel; `@bot <text>` mentions the bot.
/command [sub] [option=value ...]  a slash command (`/ask <question>` needs no option name;
                                   channels as #name, true/false, quotes for spaces)
:as member | :as mod   who you are (a member, or a moderator with Manage Server)
:in #name | :in thread | :in <id>   where you type (`thread`: the last thread the bot opened)
:channel <name> [forum]  create a channel (or forum; post there with `:post <title> | <text>`)
:click <n> <label>     click a button of bot message [n] (e.g. `:click 1 👍`)
:form <text>           fill in the form the bot opened after your last click
:wait [seconds]        wait for the bot (default 5 s)     :help     :quit"""


class LocalDiscord(DiscordEmulator):
    """The emulator, printing everything the bot writes as a member would read it."""

    def __init__(self) -> None:
        super().__init__()
        self.shown: dict[str, int] = {}  # message id -> the number it was shown with
        self.last_output = 0.0
        self.last_thread: str | None = None

    def _bot_wrote(self, message: dict[str, Any]) -> None:
        super()._bot_wrote(message)
        self.last_output = time.monotonic()
        print(self.render(message), flush=True)

    def _thread_on(self, starter: dict[str, Any], parent: dict[str, Any], owner_id: str, name: str,
                   *args: Any, **kwargs: Any) -> dict[str, Any]:
        thread = super()._thread_on(starter, parent, owner_id, name, *args, **kwargs)
        if owner_id == self.app_id:
            self.last_thread = thread["id"]
            print(f"── sourcebot opened the thread “{name}” in #{parent['name']} (`:in thread` to go there)", flush=True)
        return thread

    def where(self, channel_id: str) -> str:
        ch = self.channels.get(channel_id, {})
        if ch.get("type") in (10, 11, 12):
            return f"thread “{ch['name']}”"
        return f"#{ch.get('name', channel_id)}"

    def render(self, message: dict[str, Any]) -> str:
        edited = message["id"] in self.shown
        number = self.shown.setdefault(message["id"], len(self.shown) + 1)
        head = f"[{number}] sourcebot in {self.where(message['channel_id'])}"
        if message.get("flags", 0) & EPHEMERAL:
            head += " (only you can see this)"
        head += " (edited)" if edited else ""
        lines = [head + ":"]
        if message.get("flags", 0) & 128 and not message.get("content"):  # LOADING: a deferred answer
            lines.append("  sourcebot is thinking…")
        lines += [f"  {line}" for line in (message.get("content") or "").splitlines()]
        for embed in message.get("embeds") or []:
            for key in ("title", "description"):
                lines += [f"  ┃ {line}" for line in str(embed.get(key) or "").splitlines()]
            for field in embed.get("fields") or []:
                lines.append(f"  ┃ {field['name']}: {field['value']}")
            if (embed.get("footer") or {}).get("text"):
                lines.append(f"  ┃ — {embed['footer']['text']}")
        buttons = [c for row in message.get("components") or [] for c in row.get("components", [])]
        if buttons:
            lines.append("  " + " ".join(f"[{(c.get('emoji') or {}).get('name', '')}{c.get('label') or ''}]".replace("[]", "[?]")
                                          for c in buttons))
        return "\n".join(lines)


class Session:
    """What the person at the keyboard does: who they are, where they type."""

    def __init__(self, emulator: LocalDiscord) -> None:
        self.emu = emulator
        self.member = emulator.member("you")
        self.moderator = emulator.member("mod", permissions=MANAGE_GUILD | MANAGE_MESSAGES)
        self.me: Member = self.member
        self.channel = emulator.channel_id
        self.clicked: Any = None

    def channel_named(self, name: str) -> str:
        name = name.lstrip("#")
        for cid, ch in self.emu.channels.items():
            if ch.get("name") == name or cid == name:
                return cid
        raise LookupError(f"no channel #{name} (`:channel {name}` creates it)")

    async def line(self, text: str) -> bool:
        """Do one line; False when it expects no answer from the bot."""
        if text.startswith(":"):
            return await self.command(*(text[1:].split(maxsplit=1) + [""])[:2])
        if text.startswith("/"):
            await self.slash(text[1:])
            return True
        mention = text.startswith("@bot")
        await self.emu.inject_message(self.me, text[4:].strip() if mention else text, mention_bot=mention, channel=self.channel)
        return mention

    async def command(self, name: str, rest: str) -> bool:
        emu = self.emu
        if name == "as":
            self.me = self.moderator if rest.strip() in ("mod", "moderator") else self.member
            print(f"── you are now {self.me.user['username']}")
        elif name == "in":
            target = rest.strip()
            if target == "thread" and emu.last_thread is None:
                raise LookupError("the bot has opened no thread yet")
            self.channel = emu.last_thread if target == "thread" else self.channel_named(target)  # type: ignore[assignment]
            print(f"── you are typing in {emu.where(self.channel)}")
        elif name == "channel":
            title, _, kind = rest.partition(" ")
            cid = emu.add_channel(emu.guild_id, title.lstrip("#"), type=15 if kind.strip() == "forum" else 0)
            print(f"── created {'forum' if kind.strip() == 'forum' else 'channel'} #{title.lstrip('#')} ({cid})")
        elif name == "post":
            title, _, body = rest.partition("|")
            post, _ = await emu.create_forum_post(self.me, self.channel, title.strip(), body.strip())
            self.channel = post["id"]
            print(f"── you posted “{title.strip()}”; you are typing in it")
            return True
        elif name == "click":
            number, _, label = rest.partition(" ")
            mid = next(m for m, n in emu.shown.items() if n == int(number))
            message, _ = emu._find_message(mid)
            buttons = [c for row in message.get("components") or [] for c in row.get("components", [])]
            chosen = next(c for c in buttons if label.strip() in f"{(c.get('emoji') or {}).get('name', '')}{c.get('label') or ''}")
            self.clicked = await emu.click(self.me, message, chosen["custom_id"])
            return True
        elif name == "form":
            modal = await emu.wait_for_modal(self.clicked)
            field = next(c for row in modal["components"] for c in [row.get("component") or row["components"][0]])
            await emu.submit_modal(self.me, self.clicked, {field["custom_id"]: rest.strip()})
            return True
        elif name == "wait":
            await asyncio.sleep(float(rest or 5))
        else:
            print(HELP)
        return False

    async def slash(self, text: str) -> None:
        words = shlex.split(text)
        command, _ = self.emu._find_command(words[0], self.emu.guild_id)
        path, options, schema = [words[0]], {}, command.get("options") or []
        rest = words[1:]
        while rest and (sub := next((o for o in schema if o["name"] == rest[0] and o["type"] in (1, 2)), None)):
            path.append(rest.pop(0))
            schema = sub.get("options") or []
        if rest and "=" not in rest[0] and len([o for o in schema if o["type"] == 3]) >= 1:
            first = next(o for o in schema if o["type"] == 3)  # `/ask When was it founded?`
            options[first["name"]] = " ".join(rest)
            rest = []
        for word in rest:
            key, _, value = word.partition("=")
            kind = next((o["type"] for o in schema if o["name"] == key), 3)
            options[key] = (value.lower() in ("true", "yes", "on") if kind == 5 else int(value) if kind == 4
                            else float(value) if kind == 10 else self.channel_named(value) if kind == 7 else value)
        await self.emu.inject_command(self.me, " ".join(path), options, channel=self.channel)


async def wait_for_answer(emu: LocalDiscord, since: float, patience: float) -> None:
    """Until the bot has written something after `since` and then been quiet for a moment."""
    deadline = time.monotonic() + patience
    while time.monotonic() < deadline and emu.last_output <= since:
        await asyncio.sleep(0.05)
    while time.monotonic() - emu.last_output < 1.0 and time.monotonic() < deadline + 30:
        await asyncio.sleep(0.05)


async def main(args: argparse.Namespace) -> int:
    emu = LocalDiscord()
    await emu.start()
    env = {**os.environ, "DISCORD_TOKEN": "local-discord", "DISCORD_GUILD_ID": emu.guild_id,
           "DISCORD_API_BASE": f"http://127.0.0.1:{emu.port}/api/v10", "DISCORD_GATEWAY_URL": f"ws://127.0.0.1:{emu.port}/"}
    log = open(args.log, "ab")  # noqa: SIM115 - the bot writes to it until the end
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "bot", "run", cwd=PROJECT_ROOT, env=env,
                                                stdout=log, stderr=log)
    print(f"Starting the bot against the local Discord emulator (log: {args.log})…", flush=True)
    try:
        while not (emu.gateway_sessions and emu.gateway_sessions[-1].connected and emu.commands):
            if proc.returncode is not None:
                print(f"The bot stopped (exit {proc.returncode}); see {args.log}.", file=sys.stderr)
                return 1
            await asyncio.sleep(0.1)
        session = Session(emu)
        scripted = not sys.stdin.isatty()
        print(f"Ready: you are `you` in #{emu.channels[emu.channel_id]['name']} of “Test Server”. :help lists what you can do.")
        while proc.returncode is None:
            if not scripted:
                print("> ", end="", flush=True)
            text = await asyncio.to_thread(sys.stdin.readline)
            if not text or text.strip() in (":quit", ":q"):
                break
            if not text.strip():
                continue
            if scripted:
                print(f"> {text.strip()}", flush=True)
            started = time.monotonic()
            try:
                answered = await session.line(text.strip())
            except (LookupError, ValueError, PermissionError, StopIteration) as exc:
                print(f"── {exc or 'no such button'}", flush=True)
                continue
            if scripted:
                await wait_for_answer(emu, started, args.patience if answered else 2.0)
        return 0
    finally:
        if proc.returncode is None:
            proc.terminate()
            await proc.wait()
        log.close()
        await emu.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m tests.local_discord", description=__doc__.split("\n\n")[0])
    parser.add_argument("--log", type=Path, default=Path("local-discord.log"), help="where the bot's log goes")
    parser.add_argument("--patience", type=float, default=60.0, help="seconds a script waits for each answer")
    sys.exit(asyncio.run(main(parser.parse_args())))
