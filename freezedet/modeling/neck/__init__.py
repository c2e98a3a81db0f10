from .nasfpn import NASFPN, NASFPN_CELLS, MergeCell, add_nasfpn_config, build_nasfpn_backbone
from .plain import PlainNeck, add_plain_neck_config, build_plain_neck_backbone

__all__ = ["NASFPN", "NASFPN_CELLS", "MergeCell", "add_nasfpn_config", "build_nasfpn_backbone"]
__all__ += ["PlainNeck", "add_plain_neck_config", "build_plain_neck_backbone"]
