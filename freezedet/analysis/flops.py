"""FLOPs of a detector at a given input size (fvcore, through detectron2's analysis helpers)."""

import torch

from .. import compat

__all__ = ["count_flops"]


@torch.no_grad()
def count_flops(model: torch.nn.Module, height: int, width: int) -> dict:
    """Inference GFLOPs per top-level component (fvcore counts one fused multiply-add as 1 flop).

    Returns ``{"total": g, "<module name>": g, ...}``.
    """
    compat.import_export()  # detectron2.utils.analysis imports detectron2.export
    from detectron2.utils.analysis import FlopCountAnalysis

    model = model.eval()
    device = next(model.parameters()).device
    image = torch.zeros(3, height, width, device=device)
    flops = FlopCountAnalysis(model, [{"image": image, "height": height, "width": width}])
    flops.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    # detectron2 wraps the model in a TracingAdapter: module names start with "model."
    by_module = {
        k[len("model.") :]: v for k, v in flops.by_module().items() if k.startswith("model.")
    }
    out = {"total": flops.total() / 1e9}
    names = {
        "backbone.bottom_up.pyramid": "pyramid",
        "backbone.bottom_up": "trunk",
        "backbone": "neck",
        "proposal_generator": "rpn",
        "roi_heads": "roi_heads",
        "head": "head",
    }
    for name, label in names.items():
        if name in by_module:
            out[label] = by_module[name] / 1e9
    if "trunk" in out and "neck" in out:
        out["neck"] -= out["trunk"]  # the neck's module contains the trunk
    if "pyramid" in out:
        out["trunk"] -= out["pyramid"]  # ... and a ViT trunk's module its simple pyramid
    return out
