# registers backbones, necks, heads and meta-architectures
from . import backbone, meta_arch, neck, proposal_generator, roi_heads  # noqa: F401
