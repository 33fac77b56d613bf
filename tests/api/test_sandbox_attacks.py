"""A job is a tenant, not root: attacks from inside a sandboxed training job.

One server for the module, whose data folder lies outside /tmp (so only the sandbox's
hiding, not its private /tmp, keeps it out of reach). A victim job sleeps holding a secret
in its environment; an attacker job then tries, in one run, what the issue lists: the data
folder by its real path and through /proc/<server>/root, the process list, the victim's
environ and model folder, a remount, a signal to the server, its capabilities and uid, and
GPU device nodes on a CPU type. Each attempt's outcome goes into its report; the server and
the victim keep running, and the victim still stops cleanly.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from server_helpers import start_server
from training_helpers import host_folder, report, submit, unique, wait, wait_completed, wait_for

from sageport.backends.local import probe_sandbox
from sageport.cli.process import ServerProcess

AVAILABLE, WHY = probe_sandbox()
pytestmark = [pytest.mark.slow, pytest.mark.skipif(not AVAILABLE, reason=f"no sandbox: {WHY}")]

SECRET = "victim-secret-4711"

VICTIM = """
import time
open("/opt/ml/model/victim.txt", "w").write("mine")
time.sleep(600)
"""

ATTACKER = r"""
import ctypes, glob, json, os, signal, sys

args = json.loads(open("/opt/ml/input/config/hyperparameters.json").read())
data, server_pid = json.loads(args["data"]), int(json.loads(args["server_pid"]))
victim_pid, victim_model = int(json.loads(args["victim_pid"])), json.loads(args["victim_model"])
out = {}

def attempt(name, fn):
    try:
        out[name] = ["done", repr(fn())[:200]]
    except Exception as exc:
        out[name] = ["refused", type(exc).__name__]

attempt("credentials", lambda: open(data + "/credentials.json").read())
attempt("database", lambda: open(data + "/sageport.db", "rb").read(16))
attempt("via_server_root", lambda: open(f"/proc/{server_pid}/root{data}/credentials.json").read())
out["via_any_root"] = [p for p in glob.glob(f"/proc/*/root{data}/credentials.json")]
out["data_listing"] = os.path.isdir(data) and os.listdir(data)
pids = [p for p in os.listdir("/proc") if p.isdigit()]
out["pids"] = pids
out["cmdlines"] = [open(f"/proc/{p}/cmdline", "rb").read().decode(errors="replace") for p in pids]
attempt("victim_environ", lambda: SECRET in open(f"/proc/{victim_pid}/environ").read())
attempt("victim_model", lambda: open(victim_model + "/pwned.txt", "w").write("x"))
libc = ctypes.CDLL(None, use_errno=True)
MS_REMOUNT, MS_BIND = 32, 4096
rc = libc.mount(None, b"/usr", None, MS_REMOUNT | MS_BIND, None)
out["remount"] = [rc, ctypes.get_errno()]
attempt("write_usr", lambda: open("/usr/pwned", "w"))
attempt("kill_server", lambda: os.kill(server_pid, signal.SIGTERM))
status = dict(l.split(":", 1) for l in open("/proc/self/status").read().splitlines() if ":" in l)
out["cap_eff"] = int(status["CapEff"].strip(), 16)
out["cap_prm"] = int(status["CapPrm"].strip(), 16)
out["no_new_privs"] = status["NoNewPrivs"].strip()
out["uid"] = os.getuid()
out["dev"] = sorted(os.listdir("/dev"))
open("/opt/ml/model/report.json", "w").write(json.dumps(out))
""".replace("SECRET", repr(SECRET))


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    # /var/tmp, not /tmp: the sandbox's /tmp is private anyway, which would prove nothing
    base = Path(tempfile.mkdtemp(prefix="sageport-attacks-", dir="/var/tmp"))
    proc = start_server(base / "data")
    try:
        yield proc
    finally:
        proc.stop()
        shutil.rmtree(base, ignore_errors=True)


def _pid_with_secret() -> int:
    for pid in (p for p in os.listdir("/proc") if p.isdigit()):
        try:
            if f"VICTIM_SECRET={SECRET}".encode() in Path(f"/proc/{pid}/environ").read_bytes():
                return int(pid)
        except OSError:
            continue
    raise AssertionError("the victim's process is not running")


def test_a_job_cannot_reach_the_data_folder_other_jobs_or_the_server(
    server: ServerProcess,
) -> None:
    victim = unique("victim")
    submit(server, victim, VICTIM, Environment={"VICTIM_SECRET": SECRET})
    wait_for(server, victim, "Training")
    model = host_folder(server, victim) / "model"
    while not (model / "victim.txt").exists():
        time.sleep(0.05)
    victim_pid = _pid_with_secret()
    data = str(server.data_dir.resolve())
    server_pid = int(json.loads((server.data_dir / "server.json").read_text())["pid"])
    attacker = unique("attacker")
    hps = {
        "data": data,
        "server_pid": server_pid,
        "victim_pid": victim_pid,
        "victim_model": str(model),
    }
    submit(server, attacker, ATTACKER, hyperparameters=hps)
    got = report(server, wait_completed(server, attacker))

    for name in ("credentials", "database", "via_server_root", "victim_environ", "victim_model"):
        assert got[name][0] == "refused", (name, got[name])
    assert got["via_any_root"] == []
    assert got["data_listing"] in (False, [])  # an empty folder at most
    # its own PID namespace: bwrap's init and the job's own processes, none of the host's
    assert len(got["pids"]) <= 4, got["cmdlines"]
    assert not any("\0serve\0" in c for c in got["cmdlines"]), got["cmdlines"]
    assert not any(SECRET in c for c in got["cmdlines"])
    assert got["remount"] == [-1, 1]  # EPERM
    assert got["write_usr"][0] == "refused"
    assert got["kill_server"] == ["refused", "ProcessLookupError"]
    assert (got["cap_eff"], got["cap_prm"], got["no_new_privs"]) == (0, 0, "1")
    assert got["uid"] != 0
    assert not [d for d in got["dev"] if d.startswith("nvidia")]

    # contained: the server answers, the victim runs on untouched and still stops cleanly
    assert not (model / "pwned.txt").exists()
    sm = server.client("sagemaker")
    assert sm.describe_training_job(TrainingJobName=victim)["TrainingJobStatus"] == "InProgress"
    sm.stop_training_job(TrainingJobName=victim)
    assert wait(server, victim)["TrainingJobStatus"] == "Stopped"
    os.kill(server_pid, 0)  # still there
