"""The own-data CPU recipe on real data in own-data form: DeepForest's tiles written as COCO json
files (what a user brings), a config file written as docs/getting_started.md's "Your own data"
shows, then ``tools/train_net.py`` on it (docs/results/own_data_cpu.md: the measured run).

    OMP_NUM_THREADS=1 python benchmarks/own_data_cpu.py --out output/own_data_cpu \\
        train.eval_period=100
    python benchmarks/own_data_cpu.py --write-only --out /tmp/own   # only the jsons + config

Arguments after the options are ``key=value`` overrides of the written config.
"""

import argparse
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CONFIG = """from freezedet.model_zoo import get_config

_recipe = get_config({recipe!r})
model, dataloader, optimizer, train = _recipe.model, _recipe.dataloader, _recipe.optimizer, _recipe.train
lr_multiplier = _recipe.lr_multiplier
trunk = _recipe.trunk

dataloader.train.dataset.name = "own_trees_train"
dataloader.train.dataset.json_file = {train_json!r}
dataloader.train.dataset.image_root = {image_root!r}
dataloader.test.dataset.name = "own_trees_val"
dataloader.test.dataset.json_file = {val_json!r}
dataloader.test.dataset.image_root = {image_root!r}
model.roi_heads.num_classes = 1
train.seed = 0
"""


def write_own_data(out: str, recipe: str) -> str:
    """The DeepForest train / val tiles as ``out``/{train,val}.json and a config file training
    ``recipe`` on them; returns the config's path."""
    from freezedet.data.coco_json import write_coco_json
    from freezedet.data.deepforest import load_deepforest

    os.makedirs(out, exist_ok=True)
    splits = {s: load_deepforest(s) for s in ("train", "val")}
    image_root = os.path.commonpath([r["file_name"] for rs in splits.values() for r in rs])
    jsons = {}
    for split, records in splits.items():
        jsons[split] = os.path.join(os.path.abspath(out), f"{split}.json")
        boxes = write_coco_json(records, jsons[split], image_root=image_root, class_names=["tree"])
        print(f"{split}: {len(records)} images, {boxes} boxes -> {jsons[split]}")
    config = os.path.join(out, "own_trees.py")
    with open(config, "w") as f:
        f.write(
            CONFIG.format(
                recipe=recipe,
                train_json=jsons["train"],
                val_json=jsons["val"],
                image_root=image_root,
            )
        )
    return config


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="output/own_data_cpu")
    p.add_argument("--recipe", default="OwnData/faster_rcnn_fpn_cpu.py")
    p.add_argument("--write-only", action="store_true", help="write the jsons + config, no run")
    p.add_argument("overrides", nargs="*", help="key=value overrides of the written config")
    args = p.parse_args()
    config = write_own_data(args.out, args.recipe)
    if args.write_only:
        return
    cmd = [sys.executable, os.path.join(REPO, "tools", "train_net.py"), "--config-file", config]
    cmd += [f"train.output_dir={os.path.join(args.out, 'run')}", *args.overrides]
    print(" ".join(cmd), flush=True)
    sys.exit(subprocess.call(cmd))


if __name__ == "__main__":
    main()
