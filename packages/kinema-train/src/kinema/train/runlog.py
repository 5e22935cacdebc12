"""The run's log: the lines a user sees on the console, also in ``<run folder>/train.log`` with timestamps."""

from __future__ import annotations

import logging
import os
from pathlib import Path


class _ConsoleHandler(logging.Handler):
    """Writes through tqdm so a line never tears the progress bar."""

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm.auto import tqdm

        tqdm.write(self.format(record))


class RunLog:
    """Main rank only (others get one that drops every line); ``close`` detaches its handlers."""

    def __init__(self, folder: str | os.PathLike, active: bool = True, console: bool = True):
        self.logger = logging.getLogger(f"kinema.train.run.{id(self)}")
        self.logger.setLevel(logging.INFO)
        self.logger.propagate = False
        self.handlers: list[logging.Handler] = []
        if not active:
            return
        path = Path(folder) / "train.log"
        path.parent.mkdir(parents=True, exist_ok=True)
        file_handler = logging.FileHandler(path, mode="a", encoding="utf-8")  # a resumed run appends
        file_handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S"))
        self.handlers.append(file_handler)
        if console:
            self.handlers.append(_ConsoleHandler())
        for handler in self.handlers:
            self.logger.addHandler(handler)

    def info(self, message: str) -> None:
        self.logger.info(message)

    def file_only(self, message: str) -> None:
        """A line for the file alone (per-step metrics the progress bar already shows)."""
        for handler in self.handlers:
            if isinstance(handler, logging.FileHandler):
                handler.handle(self.logger.makeRecord(self.logger.name, logging.INFO, "", 0, message, (), None))

    def close(self) -> None:
        for handler in self.handlers:
            self.logger.removeHandler(handler)
            handler.close()
        self.handlers = []
