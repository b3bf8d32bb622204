"""The Android target: LiteRT's benchmark_model on a phone over adb (the real `adb` client; Debian package `adb`).

`--target android[:SERIAL]` pushes the user's benchmark_model binary and every .tflite file to
/data/local/tmp/xformer, runs one benchmark_model per file x threads x delegate (optionally under
`taskset MASK` to pin big or little cores) and parses its output into the same record as host runs.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from ..errors import DeviceError
from .benchmark_model import benchmark_model_args, binary_id, failed_record, find_benchmark_model, record_from_run
from .plan import RunPlan
from .record import BenchResult
from .sources import Artifact

__all__ = ["REMOTE_DIR", "AndroidTarget", "AdbDevice"]

REMOTE_DIR = "/data/local/tmp/xformer"
_PROPERTIES = {"manufacturer": "ro.product.manufacturer", "model": "ro.product.model",
               "android": "ro.build.version.release", "sdk": "ro.build.version.sdk", "soc": "ro.soc.model",
               "board": "ro.board.platform", "abi": "ro.product.cpu.abi"}


class AdbDevice:
    """One attached device, chosen by serial or as the only one; every failure explains what to do."""

    def __init__(self, serial: str | None = None, timeout: float = 60):
        self.adb = shutil.which("adb")
        if self.adb is None:
            raise DeviceError("the Android target needs the adb client on PATH: apt-get install adb "
                               "(Debian/Ubuntu) or install Android SDK platform-tools")
        self.timeout = timeout
        devices = self._devices()
        if serial is None:
            if not devices:
                raise DeviceError("no Android device attached (`adb devices` lists none): connect a phone with USB "
                                   "debugging enabled and accept its prompt, or start an emulator, then retry")
            if len(devices) > 1:
                raise DeviceError(f"{len(devices)} Android devices attached ({', '.join(devices)}); "
                                   "pick one with --target android:SERIAL")
            serial = next(iter(devices))
        if serial not in devices:
            attached = ", ".join(devices) or "none"
            raise DeviceError(f"Android device {serial!r} is not attached (attached: {attached}); check the serial "
                               "with `adb devices`")
        if devices[serial] != "device":
            raise DeviceError(f"Android device {serial} is {devices[serial]}: accept the USB debugging prompt on "
                               "the phone (unauthorized) or reconnect it (offline), then retry")
        self.serial = serial

    def _adb(self, *args: str, serial: bool = True, timeout: float | None = None) -> subprocess.CompletedProcess:
        command = [self.adb, *(["-s", self.serial] if serial else []), *args]
        try:
            return subprocess.run(command, capture_output=True, text=True, timeout=timeout or self.timeout)
        except subprocess.TimeoutExpired as err:
            raise DeviceError(f"`{shlex.join(command)}` did not finish in {err.timeout:.0f} s; check the device "
                               "connection (`adb devices`)") from err

    def _devices(self) -> dict[str, str]:
        """Serial -> state from `adb devices` (starts the adb server if none is running)."""
        proc = self._adb("devices", serial=False)
        if proc.returncode != 0:
            raise DeviceError(f"`adb devices` failed: {(proc.stderr or proc.stdout).strip()}")
        lines = proc.stdout.splitlines()
        start = next((i + 1 for i, line in enumerate(lines) if line.startswith("List of devices")), len(lines))
        return dict(line.split()[:2] for line in lines[start:] if len(line.split()) >= 2)

    def check(self, proc: subprocess.CompletedProcess, what: str) -> str:
        if proc.returncode != 0:
            raise DeviceError(f"{what} on {self.serial} failed: {(proc.stderr or proc.stdout).strip()}")
        return proc.stdout

    def shell(self, command: str, timeout: float | None = None) -> subprocess.CompletedProcess:
        return self._adb("shell", command, timeout=timeout)

    def push(self, local: Path, remote: str) -> None:
        self.check(self._adb("push", str(local), remote, timeout=600), f"adb push {local.name}")

    def environment(self) -> dict:
        props = {key: self.check(self.shell(f"getprop {prop}"), "getprop").strip() for key, prop in _PROPERTIES.items()}
        cores = self.shell("nproc").stdout.strip()
        return {**{k: v for k, v in props.items() if v}, "serial": self.serial,
                "logical_cores": int(cores) if cores.isdigit() else None}


class AndroidTarget:
    """Runs .tflite artifacts with benchmark_model on one phone."""

    def __init__(self, serial: str | None, binary: str | None, threads: list[int], plan: RunPlan,
                 delegates: list[str], taskset: str | None = None, extra_args: list[str] | None = None):
        self.device = AdbDevice(serial)
        self.binary = find_benchmark_model(binary)
        self.name = f"android:{self.device.serial}"
        self.threads, self.plan, self.delegates = threads, plan, delegates
        self.taskset, self.extra_args = taskset, extra_args

    def planned_runs(self, artifacts: list[Artifact]) -> int:
        return len(artifacts) * len(self.threads) * len(self.delegates) * (1 + self.plan.warmup + self.plan.runs)

    def run(self, artifacts: list[Artifact], advance: Callable[[int, str], None]) -> list[BenchResult]:
        device = self.device
        environment = device.environment()
        label = " ".join(environment.get(k, "") for k in ("manufacturer", "model")).strip() or device.serial
        tool = f"{REMOTE_DIR}/benchmark_model"
        device.check(device.shell(f"mkdir -p {REMOTE_DIR}"), "mkdir")
        device.push(self.binary, tool)
        device.check(device.shell(f"chmod 755 {tool}"), "chmod")
        version = binary_id(self.binary)
        results = []
        for artifact in artifacts:
            remote = f"{REMOTE_DIR}/{artifact.path.name}" if artifact.path else ""
            if not artifact.error:
                device.push(artifact.path, remote)
            for threads in self.threads:
                for delegate in self.delegates:
                    fields = dict(runtime_version=version, target=self.name, device=label, threads=threads,
                                  delegate=delegate, environment=environment)
                    results.append(self._run_one(tool, remote, artifact, threads, delegate, fields))
                    advance(1 + self.plan.warmup + self.plan.runs, f"{artifact.model} {delegate} x{threads}")
        return results

    def _run_one(self, tool: str, remote: str, artifact: Artifact, threads: int, delegate: str,
                 fields: dict) -> BenchResult:
        if artifact.error:
            return failed_record(artifact, artifact.error, fields)
        args = benchmark_model_args(remote, threads, delegate, self.plan, self.extra_args)
        command = shlex.join([*(["taskset", self.taskset] if self.taskset else []), tool, *args])
        proc = self.device.shell(command, timeout=1800)
        return record_from_run(proc.returncode, proc.stdout + proc.stderr, artifact, fields)
