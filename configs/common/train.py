# Training options read by tools/train_net.py (freezedet.engine).
train = dict(
    output_dir=None,  # None: ./output/<config path below configs/>, so runs never collide
    init_checkpoint="",
    max_iter=90000,
    device=None,  # None: cuda if available, else cpu
    seed=-1,  # -1: random; >= 0: seeded (each rank adds its rank)
    amp=dict(enabled=False),  # Automatic Mixed Precision, CUDA only
    ddp=dict(broadcast_buffers=False, find_unused_parameters=False, fp16_compression=False),
    clip_grad=dict(enabled=False, clip_type="norm", clip_value=1.0, norm_type=2.0),
    # max_to_keep: the newest periodic model_*.pth kept, across --resume too (model_final.pth is
    # always kept); every checkpoint of a large model is 100+ MB
    checkpointer=dict(period=5000, max_to_keep=3),
    eval_period=5000,
    log_period=20,  # metrics.json every 20 iterations; the console also after 30 s at most
    extra_hooks=[],  # LazyCall hooks registered before the checkpointer (e.g. EMA updates)
    # None: every parameter the model trains; else fnmatch patterns of parameter names that keep
    # training, everything else (and its BN statistics) frozen (freezedet.modeling.trainable)
    trainable=None,
)
