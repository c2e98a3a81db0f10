"""Mapper errors that name the file: a crash inside a data-loader worker says which image."""

from detectron2.data.detection_utils import SizeMismatchError

from ..utils.errors import UserError

__all__ = ["BadRecordError", "FileNamingMapper", "MapperError"]

# what a record's data (not the mapper's code) causes: a file that cannot be read, a size that
# disagrees with the annotations
_DATA_ERRORS = (OSError, SizeMismatchError, UserError)


class MapperError(RuntimeError):
    """A dataset mapper failed on one record; the message names its file."""


class BadRecordError(MapperError, UserError):
    """A :class:`MapperError` caused by the record's data (an unreadable image, a size that
    disagrees with the annotations): a user error, reported without a traceback."""


class FileNamingMapper:
    """Calls ``mapper`` on each record; any exception it raises (a truncated or unreadable image,
    a size that disagrees with the annotations, a bad polygon) is re-raised as a
    :class:`MapperError` naming the record's ``file_name`` (and the original file of a converted
    8-bit copy), with the original exception chained; a :class:`BadRecordError` where the data
    caused it (unreadable file, size mismatch).

    The engine wraps every loader's mapper in it (:func:`freezedet.engine.instantiate_loader`).
    """

    def __init__(self, *, mapper):
        """
        Args:
            mapper (callable): a dataset mapper, e.g. detectron2's ``DatasetMapper``.
        """
        self.mapper = mapper

    def __call__(self, record):
        try:
            return self.mapper(record)
        except Exception as e:
            source = record.get("source_file_name")
            data_error = isinstance(e, _DATA_ERRORS)
            raise (BadRecordError if data_error else MapperError)(
                f"{type(self.mapper).__name__} failed on image {record.get('file_name')}"
                + (f" (converted from {source})" if source else "")
                + f", image_id {record.get('image_id')}: {type(e).__name__}: {e}"
                + (
                    ". The file changed after the dataset check, or was not decoded by it "
                    "(verify_images=False): fix or remove it, or check the dataset with "
                    "verify_images=True and skip_bad_images=True."
                    if data_error
                    else ""
                )
            ) from e
