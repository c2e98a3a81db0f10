from . import backbone, meta_arch, neck  # noqa: F401  (registers backbones, necks, meta-archs)
