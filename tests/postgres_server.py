"""Start and stop a throwaway real PostgreSQL server for tests.

The server gets a fresh cluster in a temporary folder, listens on 127.0.0.1 on a free port with
`trust` authentication, and is removed on stop. PostgreSQL refuses to run as root, so as root
(sessions and CI) every server command runs as the `postgres` user through `runuser`.
Missing binaries are an error, never a skip: install them with `apt-get install -y postgresql`.
"""

from __future__ import annotations

import glob
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

INSTALL_HINT = (
    "PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin; "
    "install them with: apt-get update && apt-get install -y postgresql"
)


def find_bin_dir() -> Path:
    """The newest /usr/lib/postgresql/<version>/bin holding initdb and pg_ctl."""
    candidates = [
        Path(d) for d in glob.glob("/usr/lib/postgresql/*/bin")
        if (Path(d) / "initdb").exists() and (Path(d) / "pg_ctl").exists()
    ]  # fmt: skip
    if not candidates:
        raise RuntimeError(INSTALL_HINT)

    def version(path: Path) -> tuple[int, ...]:
        return tuple(int(n) for n in re.findall(r"\d+", path.parent.name)) or (0,)

    return max(candidates, key=version)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class PostgresServer:
    bin_dir: Path
    root: Path
    port: int
    user: str = "postgres"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def log_file(self) -> Path:
        return self.root / "log"

    def url(self, database: str = "postgres") -> str:
        """SQLAlchemy URL (psycopg 3) of `database` on this server."""
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        command = [str(self.bin_dir / args[0]), *args[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, cwd=self.root, capture_output=True, text=True, timeout=timeout, check=False)

    def _log_tail(self) -> str:
        try:
            return self.log_file.read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    def start(self) -> None:
        init = self._run(
            "initdb", "-D", str(self.data_dir), "-A", "trust", "-U", self.user,
            "-E", "UTF8", "--locale=C", "--no-sync",
        )  # fmt: skip
        if init.returncode != 0:
            raise RuntimeError(f"initdb failed ({init.returncode}):\n{init.stdout}\n{init.stderr}")
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        started = self._run("pg_ctl", "-D", str(self.data_dir), "-o", options, "-l", str(self.log_file), "-w", "start")
        if started.returncode != 0:
            raise RuntimeError(
                f"pg_ctl start failed ({started.returncode}) on port {self.port}:\n"
                f"{started.stdout}\n{started.stderr}\n{self._log_tail()}"
            )

    def stop(self) -> None:
        if (self.data_dir / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data_dir), "-w", "-m", "fast", "stop")


def start_postgres(attempts: int = 3) -> PostgresServer:
    """Start a new server on a free port (retrying on a port race); the caller must `stop_postgres`."""
    bin_dir = find_bin_dir()
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            raise RuntimeError("no 'postgres' system user to run the server as; " + INSTALL_HINT) from None
    last: Exception | None = None
    for _ in range(attempts):
        root = Path(tempfile.mkdtemp(prefix="sourcebot-pg-"))
        if os.geteuid() == 0:
            os.chown(root, owner.pw_uid, owner.pw_gid)
        server = PostgresServer(bin_dir=bin_dir, root=root, port=free_port())
        try:
            server.start()
            return server
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            last = exc
            stop_postgres(server)
    raise RuntimeError(f"could not start PostgreSQL after {attempts} attempts: {last}")


def stop_postgres(server: PostgresServer) -> None:
    """Stop the server (fast shutdown) and delete its folder."""
    try:
        server.stop()
    finally:
        shutil.rmtree(server.root, ignore_errors=True)


@contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """A running throwaway server for the `with` block."""
    server = start_postgres()
    try:
        yield server
    finally:
        stop_postgres(server)
