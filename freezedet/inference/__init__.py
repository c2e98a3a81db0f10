"""Using a trained detector: predicting images (whole or tiled), results files, export."""

from .masks import CroppedMasks
from .predictor import Predictor, config_metadata, resolve_weights
from .results import draw_instances, instances_to_results
from .tiling import MERGE_METHODS, fuse_boxes, merge_detections, tile_grid
from .tta import DihedralTTA, dihedral_views

__all__ = [
    "CroppedMasks",
    "DihedralTTA",
    "MERGE_METHODS",
    "Predictor",
    "config_metadata",
    "dihedral_views",
    "draw_instances",
    "fuse_boxes",
    "instances_to_results",
    "merge_detections",
    "resolve_weights",
    "tile_grid",
]
