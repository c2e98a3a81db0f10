from .checkpoint import AtomicDetectionCheckpointer
from .demo import draw_predictions, run_demo, summarize_run
from .loaders import instantiate_loader
from .summary import describe_lr_schedule, describe_run
from .train_loop import (
    argument_parser,
    build_model,
    build_trainer_parts,
    default_output_dir,
    do_test,
    do_train,
    load_config,
    main,
    peak_memory_mb,
    run,
    setup_run,
)

__all__ = [k for k in globals().keys() if not k.startswith("_")]
