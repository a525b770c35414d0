"""A throwaway PostgreSQL server on loopback, for the distributed-search test.

Uses the server binaries of Debian's postgresql package (apt-get install -y postgresql);
nothing is configured system-wide. PostgreSQL refuses to run as root, so under root the
server runs as the package's "postgres" user, in a temporary folder that user owns.
"""
import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path


def bindir():
    """The folder holding initdb and pg_ctl, or None if PostgreSQL is not installed."""
    candidates = []
    if shutil.which("pg_config"):  # may name libpq's folder, without a server: checked below
        candidates.append(subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True).stdout.strip())
    versions = glob.glob("/usr/lib/postgresql/*/bin")  # Debian keeps each major version apart
    candidates += sorted(versions, key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0,
                         reverse=True)
    return next((Path(c) for c in candidates if c and (Path(c) / "initdb").is_file()), None)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def postgresql_server():
    """Start a PostgreSQL server; yield its URL (user postgres, no password); stop and delete it."""
    bin_dir = bindir()
    if bin_dir is None:
        raise FileNotFoundError("PostgreSQL server binaries not found (Debian: apt-get install -y postgresql)")
    run_as = []
    folder = tempfile.mkdtemp(prefix="nn-postgres-")
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        os.chown(folder, user.pw_uid, user.pw_gid)
        run_as = ["runuser", "-u", "postgres", "--"]
    data, port = f"{folder}/data", _free_port()

    def run(*cmd):
        done = subprocess.run([*run_as, *map(str, cmd)], capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            log = Path(folder, "server.log")
            raise RuntimeError(f"{' '.join(map(str, cmd))} failed ({done.returncode}):\n{done.stdout}{done.stderr}"
                               + (log.read_text() if log.exists() else ""))

    try:
        run(bin_dir / "initdb", "-D", data, "-A", "trust", "-U", "postgres", "--no-sync")
        # Loopback only, socket in our folder (not /var/run), no fsync: a test server.
        run(bin_dir / "pg_ctl", "-D", data, "-l", f"{folder}/server.log", "-w", "-t", "60", "-o",
            f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off", "start")
        try:
            yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
        finally:
            run(bin_dir / "pg_ctl", "-D", data, "-m", "immediate", "-w", "stop")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
