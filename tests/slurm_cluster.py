"""A real one-node SLURM cluster on this machine, for the launcher's tests and for trying it by hand.

Installs Debian's ``slurmctld slurmd slurm-client munge`` when absent, then runs a private munged,
slurmctld and slurmd whose sockets, ports, state, spool, logs and pid files all live under one
folder, with ``SLURM_CONF`` pointing at its ``slurm.conf`` (nothing in /etc is touched, so a real
SLURM install on the machine is left alone). ``AuthInfo=cred_expire=20``, ``KillWait=5`` and one
second scheduler intervals make a requeued job start again about 25-60 s after it was signalled.

pytest: ``from slurm_cluster import slurm_cluster`` in ``tests/conftest.py`` provides the
session fixture; it is skipped only where the packages cannot be installed, and fails instead when
``CI`` is set. By hand: ``python tests/slurm_cluster.py up /tmp/slurm`` prints the ``export
SLURM_CONF=...`` line to use, ``python tests/slurm_cluster.py down /tmp/slurm`` stops it.
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGES = ("slurmctld", "slurmd", "slurm-client", "munge")
PROGRAMS = ("munged", "mungekey", "slurmctld", "slurmd", "sbatch", "sinfo", "squeue", "scontrol", "scancel")
PARTITION = "debug"
_SBIN = ("/usr/sbin", "/sbin")


class ClusterError(RuntimeError):
    """The local cluster failed to start; the message says why and holds the daemon logs."""


class ClusterUnavailable(ClusterError):
    """SLURM cannot be installed or run here (not root, no apt-get, the install failed)."""


def in_ci() -> bool:
    """CI must run the SLURM tests, so there a missing cluster fails instead of skipping."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _which(program: str) -> str | None:
    return shutil.which(program) or shutil.which(program, path=os.pathsep.join(_SBIN))


def missing_programs() -> list[str]:
    return [p for p in PROGRAMS if _which(p) is None]


def install_packages() -> None:
    """``apt-get install`` the packages (root only); raises ClusterError naming what failed."""
    if not missing_programs():
        return
    if os.geteuid() != 0:
        raise ClusterUnavailable(f"SLURM programs {missing_programs()} are missing and installing "
                                 f"{' '.join(PACKAGES)} needs root")
    if shutil.which("apt-get") is None:
        raise ClusterUnavailable(f"SLURM programs {missing_programs()} are missing and there is no apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *PACKAGES]):
        done = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise ClusterUnavailable(f"`{' '.join(cmd)}` failed ({done.returncode}):\n{done.stderr[-2000:]}")
    if missing_programs():
        raise ClusterUnavailable(f"installed {' '.join(PACKAGES)} but {missing_programs()} are still missing")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def _memory_mb() -> int:
    """Memory to declare for the node: a little under the machine's, which slurmd checks against."""
    total_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                    if line.startswith("MemTotal:"))
    return int(total_kb / 1024 * 0.9)


def slurm_conf(root: Path, host: str, cpus: int, memory_mb: int, ports: tuple[int, int]) -> str:
    """The ``slurm.conf`` of a one-node cluster whose every file lives under ``root`` (daemons talk
    over 127.0.0.1, so it works where the host name does not resolve to a reachable address)."""
    return f"""\
ClusterName=local
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={ports[0]}
SlurmdPort={ports[1]}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={root}/munge/munge.socket,cred_expire=20
KillWait=5
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/log/slurmctld.log
SlurmdLogFile={root}/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=1,bf_interval=1
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory_mb} State=UNKNOWN
PartitionName={PARTITION} Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""


@dataclass
class LocalSlurm:
    """A running cluster: ``env`` holds what commands and jobs need (``SLURM_CONF``)."""

    root: Path
    host: str
    cpus: int

    @property
    def conf(self) -> Path:
        return self.root / "slurm.conf"

    @property
    def env(self) -> dict[str, str]:
        return {"SLURM_CONF": str(self.conf)}

    def run(self, *cmd: str, check: bool = True) -> str:
        """Run a SLURM client command against this cluster and return its stdout."""
        done = subprocess.run([_which(cmd[0]) or cmd[0], *cmd[1:]], env={**os.environ, **self.env},
                              capture_output=True, text=True, timeout=60)
        if check and done.returncode != 0:
            raise ClusterError(f"`{' '.join(cmd)}` failed ({done.returncode}): {done.stderr.strip()}")
        return done.stdout

    def logs(self) -> str:
        """The tail of each daemon log, for error messages."""
        return "\n".join(f"--- {p.name}\n" + "\n".join(p.read_text(errors="replace").splitlines()[-15:])
                         for p in sorted((self.root / "log").glob("*.log")))


def _wait(predicate, timeout: float, what: str, cluster: LocalSlurm | None = None) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise ClusterError(f"timed out after {timeout:.0f}s waiting for {what}"
                               + (f"\n{cluster.logs()}" if cluster else ""))
        time.sleep(0.2)


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie left for an init that does not reap counts as gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return fields[0] != "Z"


def _start_daemon(cmd: list[str], pid_file: Path, env: dict[str, str]) -> None:
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise ClusterError(f"`{' '.join(cmd)}` failed ({done.returncode}): {done.stderr.strip()}")
    _wait(pid_file.exists, 10, f"{pid_file.name}")


def start(root: Path) -> LocalSlurm:
    """Install if needed, write the config under ``root`` and start munged, slurmctld, slurmd."""
    install_packages()
    if os.geteuid() != 0:
        raise ClusterUnavailable("the local SLURM cluster runs slurmd, which needs root")
    root = root.resolve()
    for sub in ("munge", "state", "spool", "log"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o755)
    os.chmod(root / "munge", 0o755)  # munged wants its socket's folder executable for all
    cluster = LocalSlurm(root=root, host=socket.gethostname().split(".")[0], cpus=os.cpu_count() or 1)
    cluster.conf.write_text(slurm_conf(root, cluster.host, cluster.cpus, _memory_mb(),
                                       (_free_port(), _free_port())))
    env = {**os.environ, **cluster.env}
    munge = root / "munge"
    key = munge / "munge.key"
    if not key.exists():
        subprocess.run([_which("mungekey"), "--create", f"--keyfile={key}"], check=True, capture_output=True)
    _start_daemon([_which("munged"), "--force", f"--socket={munge}/munge.socket", f"--key-file={key}",
                   f"--pid-file={munge}/munged.pid", f"--log-file={root}/log/munged.log",
                   f"--seed-file={munge}/munged.seed"], munge / "munged.pid", env)
    _start_daemon([_which("slurmctld")], root / "slurmctld.pid", env)
    _start_daemon([_which("slurmd")], root / "slurmd.pid", env)
    _wait(lambda: cluster.run("sinfo", "-h", "-o", "%T", check=False).strip() == "idle", 60,
          "the node to be idle in sinfo", cluster)
    return cluster


def stop(root: Path) -> None:
    """Cancel the cluster's jobs and stop the daemons recorded in its pid files."""
    cluster = LocalSlurm(root=root.resolve(), host="", cpus=0)
    if (cluster.root / "slurmctld.pid").exists():
        cluster.run("scancel", "--full", "--user=root", check=False)
    for pid_file in (root / "slurmd.pid", root / "slurmctld.pid", root / "munge" / "munged.pid"):
        if not pid_file.exists():
            continue
        pid = int(pid_file.read_text().split()[0])
        if _alive(pid):
            os.kill(pid, signal.SIGTERM)
            _wait(lambda: not _alive(pid), 30, f"{pid_file.stem} (pid {pid}) to stop")
        pid_file.unlink(missing_ok=True)


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[LocalSlurm]:
    """A running one-node cluster for the session, with ``SLURM_CONF`` set in ``os.environ``."""
    root = Path(tempfile.mkdtemp(prefix="video_iared_slurm_"))
    try:
        cluster = start(root)
    except ClusterUnavailable as err:
        if in_ci():
            pytest.fail(f"CI must run the SLURM tests, but: {err}")
        pytest.skip(f"no local SLURM cluster: {err}")
    except ClusterError:
        stop(root)
        raise
    previous = os.environ.get("SLURM_CONF")
    os.environ.update(cluster.env)
    try:
        yield cluster
    finally:
        if previous is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = previous
        stop(root)
        shutil.rmtree(root, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Start or stop a one-node SLURM cluster on this machine.")
    parser.add_argument("action", choices=("up", "down"))
    parser.add_argument("root", type=Path, help="folder for its config, state, logs and pid files")
    args = parser.parse_args(argv)
    if args.action == "down":
        stop(args.root)
        return 0
    cluster = start(args.root)
    print(f"export SLURM_CONF={cluster.conf}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
