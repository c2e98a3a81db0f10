"""Where freezedet keeps the real data and converted weights it ships without vendoring.

The root is ``$FREEZEDET_DATA`` if set, else ``<sys.prefix>/share/freezedet`` (inside the
virtual environment ``make`` creates, so ``make clean-venv`` removes it too). Paths inside it can
be written as ``freezedet://<relative path>`` anywhere detectron2's ``PathManager`` is used
(e.g. ``train.init_checkpoint = "freezedet://weights/tf_efficientnet_lite0.pth"``).
"""

import hashlib
import os
import sys

from detectron2.utils.file_io import PathHandler, PathManager

__all__ = ["cache_root", "data_root", "sha256_file", "FreezedetPathHandler"]


def data_root() -> str:
    return os.environ.get("FREEZEDET_DATA") or os.path.join(sys.prefix, "share", "freezedet")


def cache_root() -> str:
    """Where derived files go (image-check results, 8-bit copies of high-bit-depth images):
    ``$FREEZEDET_CACHE`` if set, else ``data_root()/cache``. Safe to delete."""
    return os.environ.get("FREEZEDET_CACHE") or os.path.join(data_root(), "cache")


def sha256_file(path: str) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class FreezedetPathHandler(PathHandler):
    """Resolves ``freezedet://relative/path`` against :func:`data_root`."""

    PREFIX = "freezedet://"

    def _get_supported_prefixes(self):
        return [self.PREFIX]

    def _get_local_path(self, path, **kwargs):
        rel = path[len(self.PREFIX) :]
        local = os.path.join(data_root(), rel)
        if not os.path.exists(local):
            raise FileNotFoundError(
                f"{path} resolves to {local}, which does not exist. Run `make install` (or "
                "`python tools/fetch_data.py` / `python tools/convert_pretrained.py`) to create "
                "it, or set FREEZEDET_DATA to the folder that holds it."
            )
        return local

    def _open(self, path, mode="r", **kwargs):
        return PathManager.open(self._get_local_path(path), mode, **kwargs)

    def _exists(self, path, **kwargs):
        return os.path.exists(os.path.join(data_root(), path[len(self.PREFIX) :]))

    def _isfile(self, path, **kwargs):
        return os.path.isfile(os.path.join(data_root(), path[len(self.PREFIX) :]))

    def _isdir(self, path, **kwargs):
        return os.path.isdir(os.path.join(data_root(), path[len(self.PREFIX) :]))


PathManager.register_handler(FreezedetPathHandler())
