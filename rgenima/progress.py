"""Progress bars and progress lines, on a terminal and from inside a notebook kernel.

Two kinds of progress:

- **Bars** (tqdm) for the long loops of ``synth``, ``prepare``, ``qc``, ``train``,
  ``explain`` and ``batch``. They are drawn only when standard error is a terminal, and
  never when ``RGENIMA_PROGRESS=0`` (``rgenima --quiet`` sets it, and a notebook kernel
  started by ``rgenima run`` inherits it). Bars are plain text (``tqdm.std``), never
  notebook widgets, so that no executed chapter carries a widget.
- **Lines**: one ``logging`` record per step on the ``rgenima`` loggers (a fold's epoch
  with its validation figures, a fold or a configuration finished...). ``rgenima run``
  starts each notebook's kernel with ``RGENIMA_LOG_FILE`` set; importing ``rgenima``
  in that kernel then writes the package's records to that file
  (:func:`attach_log_file`), and the runner follows the file and repeats each line on
  the terminal (:class:`LogFollower`), so that a long notebook shows which step runs.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

#: Environment variable that turns the bars off when set to ``0`` (``--quiet``).
PROGRESS_ENV = "RGENIMA_PROGRESS"
#: Environment variable naming the file a kernel writes the package's log records to.
LOG_FILE_ENV = "RGENIMA_LOG_FILE"
#: Field separator of the kernel log file (level, logger name, message).
_SEP = "\t"


def bars_enabled(stream=None) -> bool:
    """True when progress bars should be drawn on ``stream`` (default: standard error).

    False when ``RGENIMA_PROGRESS=0`` (``rgenima --quiet``) or when the stream is not
    a terminal (a log file, a pipe, a notebook kernel's captured output).
    """
    if os.environ.get(PROGRESS_ENV, "").strip().lower() in ("0", "off", "false", "no"):
        return False
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # closed or not a real stream
        return False


def set_quiet(quiet: bool = True) -> None:
    """Turn the bars off (``quiet=True``) for this process and the kernels it starts."""
    if quiet:
        os.environ[PROGRESS_ENV] = "0"
    else:
        os.environ.pop(PROGRESS_ENV, None)


def progress_bar(iterable: Iterable | None = None, **kwargs):
    """A text tqdm bar on standard error, disabled by :func:`bars_enabled`.

    Takes tqdm's arguments (``total``, ``desc``, ``unit``, ``leave``, ``position``...).
    A disabled bar is still a working iterator (and ``update``/``set_postfix`` do
    nothing), so that callers need no branch.
    """
    from tqdm.std import tqdm

    kwargs.setdefault("file", sys.stderr)
    kwargs["disable"] = kwargs.get("disable") or not bars_enabled(kwargs["file"])
    kwargs.setdefault("dynamic_ncols", True)
    return tqdm(iterable, **kwargs)


def quiet_library_bars() -> None:
    """Turn off the bars of Hugging Face transformers (model shards) unless bars are on.

    Called before models are built or saved, so that no executed chapter and no log
    file receives a bar that rgenima did not draw.
    """
    if bars_enabled():
        return
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:  # pragma: no cover - transformers is a dependency
        return
    hf_logging.disable_progress_bar()


class _KernelFileHandler(logging.Handler):
    """Appends ``LEVEL<TAB>logger<TAB>message`` lines (one per record) to a file."""

    def __init__(self, path: str) -> None:
        super().__init__(logging.INFO)
        self.path = path

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage().replace("\r", " ").replace("\n", " | ")
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write(f"{record.levelname}{_SEP}{record.name}{_SEP}{message}\n")
        except Exception:  # noqa: BLE001 - logging must never break the computation
            self.handleError(record)


def attach_log_file(path: str | os.PathLike | None = None) -> logging.Handler | None:
    """Send the ``rgenima`` loggers' INFO records to ``path`` (default: ``$RGENIMA_LOG_FILE``).

    Called when ``rgenima`` is imported in a kernel started by ``rgenima run``; does
    nothing without a path, and attaches at most one handler per file.
    """
    path = str(path) if path is not None else os.environ.get(LOG_FILE_ENV)
    if not path:
        return None
    package = logging.getLogger("rgenima")
    for handler in package.handlers:
        if isinstance(handler, _KernelFileHandler) and handler.path == path:
            return handler
    handler = _KernelFileHandler(path)
    package.addHandler(handler)
    if package.level == logging.NOTSET or package.level > logging.INFO:
        package.setLevel(logging.INFO)
    return handler


def parse_kernel_line(line: str) -> tuple[int, str, str] | None:
    """``(level, logger name, message)`` of one line written by :func:`attach_log_file`."""
    parts = line.rstrip("\n").split(_SEP, 2)
    if len(parts) != 3:
        return None
    level = logging.getLevelName(parts[0])
    return (level if isinstance(level, int) else logging.INFO), parts[1], parts[2]


class LogFollower:
    """Follow a kernel log file in a thread and repeat each line through ``emit``.

    Parameters
    ----------
    path : path
        The file named by ``RGENIMA_LOG_FILE`` for the kernel.
    emit : callable
        Called with ``(level, logger name, message)`` for every complete line, in order.
    interval : float
        Seconds between two looks at the file.

    Use as a context manager: leaving it reads what is left and stops the thread.
    """

    def __init__(self, path: str | os.PathLike, emit: Callable[[int, str, str], None], interval: float = 0.5) -> None:
        self.path = Path(path)
        self.emit = emit
        self.interval = interval
        self._offset = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rgenima-log-follower", daemon=True)

    def _read(self) -> None:
        if not self.path.is_file():
            return
        with open(self.path, encoding="utf-8", errors="replace") as handle:
            handle.seek(self._offset)
            while True:
                line = handle.readline()
                if not line.endswith("\n"):  # incomplete: read it again next time
                    break
                self._offset = handle.tell()
                parsed = parse_kernel_line(line)
                if parsed is not None:
                    self.emit(*parsed)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._read()

    def __enter__(self) -> LogFollower:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._read()


def format_seconds(seconds: float) -> str:
    """``42 s``, ``3 min 05 s`` or ``1 h 02 min``."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
