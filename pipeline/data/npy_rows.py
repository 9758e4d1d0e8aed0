"""Row-by-row writers of .npy files: the preprocess stage's arrays, written once, by any worker.

    rows = NpyRows(path, n, (h, w, 3))        # full-size file with a fixed-size .npy header
    write_row(rows.spec(), i, array)          # from any thread, in any order: one pwrite
    rows.finish(kept_rows)                    # close the files, move kept rows down, final header
"""

from __future__ import annotations

import os
import struct
import threading
from pathlib import Path

import numpy as np


def _npy_header(dtype: np.dtype, shape: tuple[int, ...], size: int) -> bytes:
    """A version 1.0 .npy header padded to exactly `size` bytes."""
    text = repr({"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False,
                 "shape": tuple(shape)}).encode("latin1")
    pad = size - 10 - len(text) - 1
    if pad < 0:  # pragma: no cover - shapes here are 4 small integers
        raise ValueError("npy header does not fit")
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", size - 10) + text + b" " * pad + b"\n"


class NpyRows:
    """A .npy file of `rows` items written row by row, by any thread, in any order.

    The file is created at full size (its disk space allocated) with a fixed-size header; workers
    write rows through `write_row` (one `pwrite` each: no copy through the caller, no page faults
    of a memory map). `finish(keep)` moves the kept rows together, writes the header with the
    final count and truncates the rest, so `np.load(..., mmap_mode="r")` reads it like any .npy.
    """

    HEADER = 128

    def __init__(self, path: Path, rows: int, item_shape: tuple[int, ...], dtype=np.uint8):
        self.path, self.rows = Path(path), rows
        self.item_shape, self.dtype = tuple(item_shape), np.dtype(dtype)
        self.row_bytes = int(np.prod(self.item_shape)) * self.dtype.itemsize
        with open(self.path, "wb") as fh:
            fh.write(_npy_header(self.dtype, (rows, *self.item_shape), self.HEADER))
            fh.flush()
            # the disk space up front: a full disk fails here, before any decoding, and the rows'
            # writes find their blocks allocated (cheaper and steadier than filling a sparse file)
            os.posix_fallocate(fh.fileno(), 0, self.HEADER + rows * self.row_bytes)

    def spec(self) -> tuple:
        """What a worker needs to open the file: (path, rows, item_shape, dtype)."""
        return (str(self.path), self.rows, self.item_shape, self.dtype.str)

    def finish(self, keep: list[int]) -> None:
        """Keep rows `keep` (ascending), in that order, as the file's whole content."""
        close_row_files()
        with open(self.path, "r+b") as fh:
            fd, rb = fh.fileno(), self.row_bytes
            for new, old in enumerate(keep):  # only after skipped pairs: rows move down
                if new != old:
                    os.pwrite(fd, os.pread(fd, rb, self.HEADER + old * rb), self.HEADER + new * rb)
            fh.write(_npy_header(self.dtype, (len(keep), *self.item_shape), self.HEADER))
            fh.truncate(self.HEADER + len(keep) * rb)


_FILES: dict[str, int] = {}  # open row files of this process, shared by its worker threads
_FILES_LOCK = threading.Lock()


def write_row(spec: tuple, row: int, item: np.ndarray) -> None:
    """Write `item` as row `row` of the NpyRows file described by `spec`."""
    path, rows, shape, dtype = spec
    if item.shape != tuple(shape):
        raise ValueError(f"{Path(path).name}: row of shape {item.shape}, expected {tuple(shape)}")
    if not 0 <= row < rows:
        raise ValueError(f"{Path(path).name}: row {row} outside 0..{rows - 1}")
    fd = _FILES.get(path)
    if fd is None:
        with _FILES_LOCK:  # two threads opening the same file would leak a descriptor
            fd = _FILES.get(path)
            if fd is None:
                fd = _FILES[path] = os.open(path, os.O_WRONLY)
    data = memoryview(np.ascontiguousarray(item, np.dtype(dtype))).cast("B")
    offset = NpyRows.HEADER + row * len(data)
    while data:  # a regular file takes it in one call; a short write is retried, never lost
        done = os.pwrite(fd, data, offset)
        data, offset = data[done:], offset + done


def close_row_files() -> None:
    """Close this process's row files (the page cache already holds the data: no fsync)."""
    with _FILES_LOCK:
        while _FILES:
            os.close(_FILES.popitem()[1])
