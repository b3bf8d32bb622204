"""Third-party log noise, silenced by default so our own lines and tables stay readable.

The converters and runtimes we drive (TensorFlow, LiteRT, absl, torchao, coremltools, onnxscript) log from C++
straight to the process's stderr file descriptor, where no Python setting reaches all of it. Three layers:
environment variables set before those libraries are imported, Python loggers and warnings filtered per known
source and message, and `quiet_native()`, which routes the file descriptors through a temporary file around
conversions and replays every line except the known noise. `--verbose` turns all three off.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import tempfile
import warnings

__all__ = ["NATIVE_NOISE", "configure", "is_noise", "quiet_native", "quiet_python", "verbose"]

_state = {"verbose": False}

# Set before the heavy imports; values the user already exported win.
QUIET_ENV = {"TF_CPP_MIN_LOG_LEVEL": "3", "GRPC_VERBOSITY": "ERROR", "GLOG_minloglevel": "3"}
NOISY_LOGGERS = ("absl", "tensorflow", "tf_keras", "torchao", "torch.utils._pytree", "torch.onnx", "torch._export",
                 "onnxscript", "onnx_ir", "coremltools", "litert_torch", "ai_edge_quantizer", "ai_edge_torch", "jax",
                 "onnx2tf")
# (category, message regex) of Python warnings the converters raise on every run; anything else still shows.
NOISY_WARNINGS = (
    (Warning, r".*is an Enum subclass and is now natively supported by torch.compile"),
    (Warning, r"Torch version .* has not been tested with coremltools"),
    (Warning, r"scikit-learn version .* is not supported"),
    (Warning, r".*Failed to load .*torchao"),
    (Warning, r"Converting a tensor to a Python .* might cause the trace to be incorrect"),
    (Warning, r".*torch\.export.*strict"),
    (Warning, r"You are using `torch.load` with `weights_only=False`"),
)
# Lines written to the stderr/stdout file descriptors by C++ and Python libraries: glog/absl prefixes
# ("I0000 00:00:17.. 123 port.cc:153] ...", "W1130 12:14:49.319000 3951 torch/..."), TFLite's minimal logger,
# torchao's missing-kernel notes, coremltools' and tqdm's progress bars.
NATIVE_NOISE = re.compile(
    r"^\s*(?:"
    r"[IWEF]\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ \S+:\d+\]"
    r"|WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|(?:INFO|VERBOSE): (?:Created TensorFlow Lite|Initialized TensorFlow Lite|Replacing \d+|TfLite)"
    r"|Failed to load \S*torchao\S*"
    r"|.*\d+%\|.*\|.*(?:it/s|s/it|ops/s|passes/s|\?)"
    r"|Running (?:MIL|TensorFlow Graph) .*pipeline"
    r"|(?:Converting PyTorch Frontend|Adding op|Running MIL)"
    r")")


def verbose() -> bool:
    return _state["verbose"]


def is_noise(line: str) -> bool:
    """A known third-party line, or a terminal control sequence (a progress display's redraw caught in the
    capture; our own output inside a capture goes to a file and carries none)."""
    return bool(NATIVE_NOISE.match(line)) or "\x1b[" in line


def configure(verbose: bool = False) -> None:
    """Quiet (default) or verbose third-party logging; call before the converters are imported."""
    _state["verbose"] = verbose
    if verbose:
        return
    for name, value in QUIET_ENV.items():
        if value is not None:
            os.environ.setdefault(name, value)
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    for category, message in NOISY_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()


@contextlib.contextmanager
def quiet_native():
    """Route fds 1 and 2 through temporary files, then replay each one's lines that are not known noise.

    Our own messages printed inside keep their order and stream; they appear when the block ends. With
    --verbose, or when the descriptors cannot be duplicated (a host without them), the block runs unchanged.
    """
    if verbose():
        yield
        return
    try:
        saved = {fd: os.dup(fd) for fd in (1, 2)}
    except OSError:
        yield
        return
    captures = {fd: tempfile.TemporaryFile(mode="w+b") for fd in saved}
    _flush()
    for fd, capture in captures.items():
        os.dup2(capture.fileno(), fd)
    try:
        yield
    finally:
        _flush()
        for fd, copy in saved.items():
            os.dup2(copy, fd)
            os.close(copy)
        for fd, stream in ((1, sys.stdout), (2, sys.stderr)):
            with captures[fd] as capture:
                capture.seek(0)
                text = capture.read().decode("utf-8", errors="replace")
            kept = [line for line in text.replace("\r", "\n").splitlines() if line.strip() and not is_noise(line)]
            if kept:
                stream.write("\n".join(kept) + "\n")
                stream.flush()


@contextlib.contextmanager
def quiet_python(*loggers: str):
    """Around one conversion: the root logger (and `loggers`) at ERROR and every Python warning ignored, for
    converters that log advice and internals on each call (torch.export, torchao, onnxruntime's quantiser).
    Unchanged with --verbose."""
    if verbose():
        yield
        return
    quieted = [logging.getLogger(), *(logging.getLogger(name) for name in loggers)]
    levels = [logger.level for logger in quieted]
    for logger in quieted:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(quieted, levels):
            logger.setLevel(level)
