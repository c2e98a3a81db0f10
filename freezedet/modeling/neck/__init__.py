from .nasfpn import NASFPN, NASFPN_CELLS, MergeCell, add_nasfpn_config, build_nasfpn_backbone

__all__ = ["NASFPN", "NASFPN_CELLS", "MergeCell", "add_nasfpn_config", "build_nasfpn_backbone"]
