"""The body of an answer, held in memory up to a size and spilled to a temporary file beyond."""

from __future__ import annotations

import io
import shutil
import tempfile
from pathlib import Path
from typing import IO

#: Name of the spilled body in its temporary directory (hidden: never taken for a result file).
SPILL_NAME = ".answer.part"


class Body:
    """The bytes of an answer: in memory up to ``memory_bytes``, else in a file of a temporary directory.

    The directory (:attr:`directory`) is created when the body spills; whoever opens the result
    takes it over (:meth:`take_directory`) and removes it. :meth:`discard` removes what the body
    holds: the memory, or the spill file (and its directory, unless taken over).
    """

    def __init__(self, memory_bytes: int) -> None:
        self.memory_bytes = int(memory_bytes)
        self.size = 0
        self.directory: Path | None = None
        self.path: Path | None = None
        self._buffer: io.BytesIO | None = io.BytesIO()
        self._file: IO[bytes] | None = None
        self._owns_directory = False

    @property
    def in_memory(self) -> bool:
        """Whether the bytes are held in memory (not spilled)."""
        return self._buffer is not None

    def spill(self) -> None:
        """Move the bytes to a file in a new temporary directory; later writes go there."""
        if self._buffer is None:
            return
        self.directory = Path(tempfile.mkdtemp(prefix="xr-openeo-execute-"))
        self._owns_directory = True
        self.path = self.directory / SPILL_NAME
        self._file = self.path.open("wb")
        self._file.write(self._buffer.getbuffer())
        self._buffer = None

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self._buffer is not None and self.size > self.memory_bytes:
            self.spill()
        (self._buffer if self._buffer is not None else self._file).write(chunk)  # type: ignore[union-attr]

    def finish(self) -> None:
        """Close the spill file, if any (the body is complete)."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def open(self) -> IO[bytes]:
        """The bytes, readable from the start (a file object the caller closes)."""
        if self._buffer is not None:
            return io.BytesIO(self._buffer.getbuffer())
        assert self.path is not None
        return self.path.open("rb")

    def bytes(self) -> bytes:
        """The bytes held in memory (only when :attr:`in_memory`)."""
        if self._buffer is None:
            raise ValueError("the body was spilled to a file; read it with open()")
        return self._buffer.getvalue()

    def take_directory(self) -> Path | None:
        """The spill file's directory, now the caller's to remove (None when the body is in memory)."""
        self._owns_directory = False
        return self.directory

    def discard(self) -> None:
        """Drop the bytes: the memory, or the spill file (with its directory, unless taken over)."""
        self.finish()
        self._buffer = None
        if self._owns_directory and self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
        elif self.path is not None:
            self.path.unlink(missing_ok=True)
