"""What a user sees when `source add` refuses something: one short line on stderr, nothing else
(no library's log lines beside it, no traceback)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from bot.rag.errors import SourceError
from bot.rag.ingest.url_safety import check_url
from bot.settings import Settings
from tests.helpers import run_cli


def test_a_very_long_host_name_gives_a_short_message(settings: Settings) -> None:
    host = "a" * 4000 + ".example"
    result = run_cli(settings, "source", "add", f"http://{host}/page.html")
    assert result.returncode == 2 and result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and len(lines[0]) < 400, lines
    assert lines[0].startswith("error: http://aaaa") and "…" in lines[0]
    assert lines[0].endswith(f"not a valid URL (the host name {'a' * 29}…{'a' * 22}.example has 4,008 characters, "
                             "more than 253).")


def test_a_long_but_valid_host_name_is_shortened_in_the_lookup_error(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_such_name(host: str, *args: object, **kwargs: object) -> None:  # no lookup leaves the machine
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_such_name)
    host = ".".join(["b" * 60] * 4) + ".invalid"  # 252 characters: a valid length
    with pytest.raises(SourceError) as info:
        check_url(f"http://{host}/", settings)
    message = str(info.value)
    assert len(message) < 400 and f"the host name {'b' * 29}…" in message and host not in message


def test_an_html_page_without_text_is_one_line_on_stderr(settings: Settings, tmp_path: Path) -> None:
    page = tmp_path / "empty.html"
    page.write_text("<html><head><title>x</title></head><body><div></div></body></html>")
    result = run_cli(settings, "source", "add", str(page))
    assert result.returncode == 2
    assert result.stderr.splitlines() == ["error: empty.html: no readable text found on the page."]
