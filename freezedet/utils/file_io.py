"""File I/O in one place, as detectron2 keeps it in ``detectron2/utils/file_io.py``: where
freezedet keeps its data (the ``freezedet://`` path handler), file hashes, and atomic writes.

Data root: ``$FREEZEDET_DATA`` if set, else ``<sys.prefix>/share/freezedet`` (inside the virtual
environment ``make`` creates, so ``make clean-venv`` removes it too). Derived files that can be
recomputed (image-check results, 8-bit copies of high-bit-depth images) go to the user cache
directory instead (:func:`cache_root`: ``$FREEZEDET_CACHE``, else the platform's user cache
directory, ``~/.cache/freezedet`` on Linux), which an installed package can always write to. Paths inside it can be
written as ``freezedet://<relative path>`` anywhere detectron2's ``PathManager`` is used (e.g.
``train.init_checkpoint = "freezedet://weights/tf_efficientnet_lite0.pth"``); importing this
module registers the handler.

Atomic writes: :func:`atomic_open` writes a temp file next to the destination and renames it into
place, so a reader (or a run resumed after a kill) sees either the old file or the complete new
one, never a torn one.
"""

import contextlib
import hashlib
import os
import sys
import tempfile

import torch

from detectron2.utils.file_io import PathHandler, PathManager

from .errors import UserFileNotFoundError

__all__ = [
    "FreezedetPathHandler",
    "atomic_open",
    "atomic_torch_save",
    "atomic_write_text",
    "cache_root",
    "data_root",
    "sha256_file",
]


def data_root() -> str:
    return os.environ.get("FREEZEDET_DATA") or os.path.join(sys.prefix, "share", "freezedet")


def cache_root() -> str:
    """Where derived files go (image-check results, 8-bit copies of high-bit-depth images); safe
    to delete. ``$FREEZEDET_CACHE`` if set, else the platform's user cache directory:
    ``$XDG_CACHE_HOME/freezedet`` (default ``~/.cache/freezedet``) on Linux and other Unix,
    ``~/Library/Caches/freezedet`` on macOS, ``%LOCALAPPDATA%\\freezedet\\Cache`` on Windows."""
    if os.environ.get("FREEZEDET_CACHE"):
        return os.environ["FREEZEDET_CACHE"]
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or os.path.expanduser(r"~\AppData\Local")
        return os.path.join(base, "freezedet", "Cache")
    if sys.platform == "darwin":
        return os.path.expanduser("~/Library/Caches/freezedet")
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return os.path.join(base, "freezedet")


def sha256_file(path: str) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _umask_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextlib.contextmanager
def atomic_open(path: str, mode: str = "w"):
    """Open a temp file next to ``path`` for writing; on leaving the block without an exception
    it is flushed, fsync'ed, given the permissions of a normally created file and renamed onto
    ``path`` (on an exception it is removed and ``path`` is left as it was).

    Args:
        path (str): the destination; its directory must exist.
        mode (str): "w" (text) or "wb" (binary).
    """
    assert mode in ("w", "wb"), f"atomic_open mode={mode!r}: 'w' or 'wb'"
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-" + os.path.basename(path), dir=directory)
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _umask_mode())  # mkstemp creates 0600
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_torch_save(obj, path: str):
    """``torch.save`` to ``path`` so that ``path`` is either the old file or the complete new one."""
    with atomic_open(path, "wb") as f:
        torch.save(obj, f)


def atomic_write_text(text: str, path: str):
    """Write ``text`` to ``path`` so that ``path`` is either the old file or the complete new one."""
    with atomic_open(path, "w") as f:
        f.write(text)


class FreezedetPathHandler(PathHandler):
    """Resolves ``freezedet://relative/path`` against :func:`data_root`."""

    PREFIX = "freezedet://"

    def _get_supported_prefixes(self):
        return [self.PREFIX]

    def _local(self, path: str) -> str:
        return os.path.join(data_root(), path[len(self.PREFIX) :])

    def _get_local_path(self, path, **kwargs):
        local = self._local(path)
        if not os.path.exists(local):
            raise UserFileNotFoundError(
                f"{path} resolves to {local}, which does not exist. Run `make install` (or "
                "`python tools/fetch_data.py` / `python tools/convert_pretrained.py`) to create "
                "it, or set FREEZEDET_DATA to the folder that holds it."
            )
        return local

    def _open(self, path, mode="r", **kwargs):
        return PathManager.open(self._get_local_path(path), mode, **kwargs)

    def _exists(self, path, **kwargs):
        return os.path.exists(self._local(path))

    def _isfile(self, path, **kwargs):
        return os.path.isfile(self._local(path))

    def _isdir(self, path, **kwargs):
        return os.path.isdir(self._local(path))


PathManager.register_handler(FreezedetPathHandler())
