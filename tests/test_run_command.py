"""`python -m bot run` as an admin starts it: a real process, talking to the Discord
emulator, answering, and shutting down gracefully on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

from bot.settings import PROJECT_ROOT, Settings
from tests.discord_emulator import DiscordEmulator


async def test_run_without_token_is_a_clear_error(settings: Settings) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "run", cwd=PROJECT_ROOT,
        env={"PATH": os.environ.get("PATH", ""), "HOME": str(settings.vectorstore_dir.parent), "DISCORD_TOKEN": ""},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 2 and b"DISCORD_TOKEN is not set" in err and b"Traceback" not in err


async def test_run_answers_then_stops_gracefully_on_sigterm(emulator: DiscordEmulator, settings: Settings) -> None:
    env = {
        "PATH": os.environ.get("PATH", ""), "HOME": str(settings.vectorstore_dir.parent),
        "DISCORD_TOKEN": "run-test-token", "DISCORD_GUILD_ID": emulator.guild_id,
        "DISCORD_API_BASE": f"http://127.0.0.1:{emulator.port}/api/v10",
        "DISCORD_GATEWAY_URL": f"ws://127.0.0.1:{emulator.port}/",
        "SOURCES_DIR": str(settings.sources_dir), "VECTORSTORE_DIR": str(settings.vectorstore_dir),
        "DATA_DIR": str(settings.data_dir),  # never the checkout's own data folder
        "LLM_PROVIDER": "extractive", "LOG_LEVEL": "INFO",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "run", cwd=PROJECT_ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        await emulator.wait_for_call("PUT", rf"/applications/\d+/guilds/{emulator.guild_id}/commands", timeout=60)
        for _ in range(200):  # wait until the gateway session is up
            if emulator.sessions:
                break
            await asyncio.sleep(0.05)
        member = emulator.member("alice")
        mark = len(emulator.calls)
        interaction = await emulator.inject_slash(member, "ask", question="How many hostages were taken back to Gaza?")
        await emulator.wait_for_call("POST", rf"/interactions/\d+/{interaction.token}/callback", after=mark)
        proc.send_signal(signal.SIGTERM)
        answer = await emulator.wait_for_call("POST", rf"/webhooks/\d+/{interaction.token}", after=mark)
        assert "253" in answer.body["content"]
        _, err = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode == 0, err.decode()
        log = err.decode()
        assert "shutting down" in log and "run-test-token" not in log and "Traceback" not in log
        assert '"event": "question"' in log
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
