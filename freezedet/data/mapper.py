"""Mapper errors that name the file: a crash inside a data-loader worker says which image."""

__all__ = ["FileNamingMapper", "MapperError"]


class MapperError(RuntimeError):
    """A dataset mapper failed on one record; the message names its file."""


class FileNamingMapper:
    """Calls ``mapper`` on each record; any exception it raises (a truncated or unreadable image,
    a size that disagrees with the annotations, a bad polygon) is re-raised as a
    :class:`MapperError` naming the record's ``file_name`` (and the original file of a converted
    8-bit copy), with the original exception chained.

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
            raise MapperError(
                f"{type(self.mapper).__name__} failed on image {record.get('file_name')}"
                + (f" (converted from {source})" if source else "")
                + f", image_id {record.get('image_id')}: {type(e).__name__}: {e}"
            ) from e
