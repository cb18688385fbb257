"""Progress bars: tqdm's on a terminal; where stderr is not one (a log file, CI, nohup), a plain line now and
then instead of tqdm's carriage-return frames (a 70-second `hprune train` wrote 190 of them into its log)."""
from __future__ import annotations

import io
import re
import sys

from tqdm.auto import tqdm

PLAIN_LINE_SECONDS = 30  # between two plain lines of one bar


_CURSOR_MOVES = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")  # how tqdm stacks nested bars on a terminal


class _PlainLines(io.TextIOBase):
    """Where tqdm draws when stderr is not a terminal: each new frame becomes a line; cleared and repeated
    frames and cursor moves are dropped."""

    def __init__(self, stream):
        self.stream = stream
        self.last = None

    def write(self, text: str) -> int:
        for frame in _CURSOR_MOVES.sub("", text).replace("\r", "\n").split("\n"):
            frame = frame.rstrip()
            if frame.strip() and frame != self.last:
                self.stream.write(frame + "\n")
                self.last = frame
        self.stream.flush()
        return len(text)


def progress_bar(iterable=None, *, desc: str, total: int | None = None, initial: int = 0, unit: str = "batch",
                 leave: bool = False, disable: bool = False):
    """A tqdm bar on a terminal; elsewhere one that writes a plain line at most every PLAIN_LINE_SECONDS, and its last."""
    if disable or sys.stderr.isatty():
        return tqdm(iterable, desc=desc, total=total, initial=initial, unit=unit, leave=leave, disable=disable)
    return tqdm(iterable, desc=desc, total=total, initial=initial, unit=unit, leave=True, file=_PlainLines(sys.stderr), ascii=True,
                ncols=100, mininterval=PLAIN_LINE_SECONDS, maxinterval=PLAIN_LINE_SECONDS)
