from . import backbone, neck  # noqa: F401  (registers backbones and necks)
