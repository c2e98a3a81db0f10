"""``tools/analyze_model.py``: parameters per component and FLOPs for any config."""

from detectron2.config import instantiate

from ..config import load_config
from .cli import analyze_argument_parser
from .flops import count_flops
from .params import format_parameter_table, parameter_table

__all__ = ["analyze_config", "main"]


def analyze_config(config_file: str, overrides=(), input_size=None):
    """Returns ``(parameter rows, flops dict or None)`` for a config."""
    cfg = load_config(config_file, overrides)
    model = instantiate(cfg.model)
    rows = parameter_table(model)
    flops = count_flops(model, *input_size) if input_size else None
    return rows, flops


def main(argv=None):
    args = analyze_argument_parser(__doc__).parse_args(argv)
    for config_file in args.config_file:
        rows, flops = analyze_config(config_file, args.opts, args.input_size)
        t = rows["total"]
        print(
            f"\n## {config_file}: {t['trainable'] / 1e6:.2f}M of {t['total'] / 1e6:.2f}M "
            f"parameters trainable ({100 * t['trainable'] / t['total']:.1f}%)"
        )
        print(format_parameter_table(rows))
        if flops:
            h, w = args.input_size
            print(f"GFLOPs at {h}x{w}: " + ", ".join(f"{k} {v:.2f}" for k, v in flops.items()))
