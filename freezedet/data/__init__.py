from . import paths  # noqa: F401  (registers the freezedet:// path handler)
