from ..config import default_output_dir, load_config
from .cli import argument_parser
from .defaults import build_model, build_optimizer, build_trainer, setup_run
from .demo import draw_predictions, run_demo, summarize_run
from .evaluate import do_test
from .loaders import instantiate_loader
from .summary import describe_lr_schedule, describe_run
from .train_net import do_train, main, peak_memory_mb

__all__ = [k for k in globals().keys() if not k.startswith("_")]
