"""Real servers for the ``integration`` tests: a throwaway PostgreSQL cluster and a Ray head.

Both are started by the fixture on free ports, in their own temporary directories, and
stopped and removed afterwards (only the processes the fixture started). PostgreSQL comes
from Debian's ``postgresql`` package (``.ci/run`` installs it); it refuses to run as root,
so under root the server runs as the ``postgres`` user the package creates. A missing
server is a failure under CI (``CI=true``) and a skip elsewhere.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def missing(what: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{what} (CI must provide it: see .ci/run)")
    pytest.skip(what)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pg_bindir() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


@pytest.fixture(scope="session")
def postgres_url():
    """``postgresql+psycopg://factory@127.0.0.1:<port>/postgres`` of a fresh cluster."""
    bindir = _pg_bindir()
    if bindir is None:
        missing("PostgreSQL server binaries (initdb, pg_ctl) not found: "
                "apt-get install postgresql")
    root = Path(tempfile.mkdtemp(prefix="factory-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:  # postgres refuses root: run it as the package's postgres user
        shutil.chown(root, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    data, port = root / "data", free_port()

    def run(*args: str) -> None:
        subprocess.run([*as_user, *args], check=True, capture_output=True, timeout=120)

    run(str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "factory", "-E", "UTF8",
        "--no-sync")
    run(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(root / "server.log"), "-w",
        "-t", "60", "-o", f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off",
        "start")
    try:
        yield f"postgresql+psycopg://factory@127.0.0.1:{port}/postgres"
    finally:
        run(str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)


def _stop_group(proc: subprocess.Popen) -> None:
    """SIGTERM the process group the fixture started (its own session), SIGKILL if needed."""
    for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 30)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture(scope="session")
def ray_address():
    """Address of a local Ray head (``ray start --head --block``), 2 CPUs, small store."""
    ray_bin = Path(sys.executable).parent / "ray"
    if not ray_bin.is_file():
        missing("the `ray` command is not installed in this virtualenv")
    temp = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))  # short: Unix socket paths
    port = free_port()
    ports = {flag: free_port() for flag in (  # fixed defaults would clash with other clusters
        "--dashboard-agent-listen-port", "--dashboard-agent-grpc-port",
        "--runtime-env-agent-port", "--metrics-export-port")}
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_USAGE_STATS_ENABLED": "0"}
    log = (temp / "head.log").open("w")
    proc = subprocess.Popen(
        [str(ray_bin), "start", "--head", f"--port={port}",
         "--num-cpus=2", "--object-store-memory=100000000", "--include-dashboard=false",
         "--disable-usage-stats", f"--temp-dir={temp}", "--block",
         *[f"{flag}={p}" for flag, p in ports.items()]],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        # the head prints `ray start --address='<node ip>:<port>'` for joining nodes
        while not (found := re.search(r"--address='([^']+)'", (temp / "head.log").read_text())):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail("ray start --head failed:\n" + (temp / "head.log").read_text()[-3000:])
            time.sleep(0.5)
        yield found.group(1)
    finally:
        _stop_group(proc)
        log.close()
        shutil.rmtree(temp, ignore_errors=True)
