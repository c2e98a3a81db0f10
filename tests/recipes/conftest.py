"""Real data in the COCO and LVIS formats, laid out as detectron2 reads them from
``$DETECTRON2_DATASETS``: labelme's 3 VOC photos with their 12 polygon masks, written as

- ``coco/annotations/instances_{train,val}2017.json`` + ``coco/{train,val}2017/``: COCO 2017's
  80 categories (ids 1-90, detectron2's ``COCO_CATEGORIES``), each VOC class as its COCO
  category, polygon ``segmentation``, mask ``area``, ``iscrowd``;
- ``lvis/lvis_v1_{train,val}.json``: LVIS v1's 1203 categories (detectron2's
  ``LVIS_CATEGORIES``: ``frequency``, ``synset`` ...) with ``image_count`` / ``instance_count``
  of this train split, images with ``coco_url`` (split folder + file, as LVIS v1 names COCO
  images), ``neg_category_ids`` and ``not_exhaustive_category_ids``.

Train and val hold the same 3 photos (as the LabelmeVOC recipes do): these runs check that a
recipe trains and evaluates on its data format, not accuracy.
"""

import contextlib
import json
import os

import pycocotools.mask as mask_util
import pytest

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets import register_coco_instances
from detectron2.data.datasets.builtin_meta import COCO_CATEGORIES, _get_builtin_metadata
from detectron2.data.datasets.lvis_v1_categories import LVIS_CATEGORIES

# labelme's VOC class names -> COCO 2017 / LVIS v1 category names (all 20 VOC classes)
VOC_TO_COCO = {
    "aeroplane": "airplane",
    "diningtable": "dining table",
    "motorbike": "motorcycle",
    "pottedplant": "potted plant",
    "sofa": "couch",
    "tvmonitor": "tv",
}
VOC_TO_LVIS = {
    "aeroplane": "airplane",
    "bus": "bus_(vehicle)",
    "car": "car_(automobile)",
    "diningtable": "dining_table",
    "motorbike": "motorcycle",
    "pottedplant": "flowerpot",
    "train": "train_(railroad_vehicle)",
    "tvmonitor": "television_set",
}
COCO_NAMES = {"train": "coco_2017_train", "val": "coco_2017_val"}
LVIS_NAMES = {"train": "lvis_v1_train_json", "val": "lvis_v1_val_json"}


def _labelme_objects():
    """(image, [(VOC class name, polygons, xywh box)]) per labelme photo, image ids 1-3."""
    records = DatasetCatalog.get("labelme_voc_train")
    voc = MetadataCatalog.get("labelme_voc_train").thing_classes
    out = []
    for i, r in enumerate(sorted(records, key=lambda r: r["file_name"])):
        image = dict(path=r["file_name"], id=i + 1, height=r["height"], width=r["width"])
        objects = []
        for a in r["annotations"]:
            x, y, w, h = a["bbox"]  # load_coco_json keeps the json's XYWH_ABS boxes
            objects.append((voc[a["category_id"]], a["segmentation"], [x, y, w, h]))
        out.append((image, objects))
    return out


def _area(polygons, image):
    rles = mask_util.frPyObjects(polygons, image["height"], image["width"])
    return float(mask_util.area(mask_util.merge(rles)))


def _link_images(root, split, photos):
    folder = os.path.join(root, "coco", f"{split}2017")
    os.makedirs(folder, exist_ok=True)
    for image, _ in photos:
        link = os.path.join(folder, os.path.basename(image["path"]))
        if not os.path.exists(link):
            os.symlink(image["path"], link)


def write_coco_json(path, photos):
    """A COCO 2017 instances json of ``photos`` (see the module docstring)."""
    ids = {c["name"]: c["id"] for c in COCO_CATEGORIES if c["isthing"]}
    images, annotations = [], []
    for image, objects in photos:
        images.append(
            {
                "id": image["id"],
                "file_name": os.path.basename(image["path"]),
                "height": image["height"],
                "width": image["width"],
            }
        )
        for voc_name, polygons, box in objects:
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image["id"],
                    "category_id": ids[VOC_TO_COCO.get(voc_name, voc_name)],
                    "segmentation": polygons,
                    "area": _area(polygons, image),
                    "bbox": box,
                    "iscrowd": 0,
                }
            )
    categories = [
        {"id": c["id"], "name": c["name"], "supercategory": "none"}
        for c in COCO_CATEGORIES
        if c["isthing"]
    ]
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump({"images": images, "annotations": annotations, "categories": categories}, f)
    return path


def write_lvis_json(path, photos, split, train_photos):
    """An LVIS v1 json of ``photos`` (images in ``coco/<split>2017/``); the categories'
    ``image_count`` / ``instance_count`` are those of ``train_photos``, as LVIS v1's val json
    carries the train split's counts."""
    ids = {c["name"]: c["id"] for c in LVIS_CATEGORIES}

    def cat(voc_name):
        return ids[VOC_TO_LVIS.get(voc_name, voc_name)]

    images, annotations = [], []
    in_data = {cat(n) for _, objects in photos for n, _, _ in objects}
    for image, objects in photos:
        present = {cat(n) for n, _, _ in objects}
        images.append(
            {
                "id": image["id"],
                "height": image["height"],
                "width": image["width"],
                "coco_url": (
                    f"http://images.cocodataset.org/{split}2017/{os.path.basename(image['path'])}"
                ),
                # verified absent: the dataset's other categories (every one checked here)
                "neg_category_ids": sorted(in_data - present),
                "not_exhaustive_category_ids": [],
            }
        )
        for voc_name, polygons, box in objects:
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image["id"],
                    "category_id": cat(voc_name),
                    "segmentation": polygons,
                    "area": _area(polygons, image),
                    "bbox": box,
                }
            )
    image_sets, instances = {}, {}
    for image, objects in train_photos:
        for voc_name, _, _ in objects:
            image_sets.setdefault(cat(voc_name), set()).add(image["id"])
            instances[cat(voc_name)] = instances.get(cat(voc_name), 0) + 1
    categories = [
        dict(
            c,
            image_count=len(image_sets.get(c["id"], ())),
            instance_count=instances.get(c["id"], 0),
        )
        for c in LVIS_CATEGORIES
    ]
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump({"images": images, "annotations": annotations, "categories": categories}, f)
    return path


def _unregister(names):
    for n in names:
        if n in DatasetCatalog:
            DatasetCatalog.remove(n)
        if n in MetadataCatalog:
            MetadataCatalog.remove(n)


@contextlib.contextmanager
def _registered_as(names, register):
    """Run with ``names`` registered by ``register()`` (or unregistered if it is None), then
    put back what was registered under them before: detectron2 registers its built-in COCO
    names at import, pointing at ``./datasets``, and other tests rely on that."""
    saved = {n: (DatasetCatalog[n], MetadataCatalog.get(n)) for n in names if n in DatasetCatalog}
    _unregister(names)
    if register is not None:
        register()
    try:
        yield
    finally:
        _unregister(names)
        for n, (func, meta) in saved.items():
            DatasetCatalog.register(n, func)
            MetadataCatalog[n] = meta


@pytest.fixture(scope="module")
def real_format_data(tmp_path_factory):
    """A ``$DETECTRON2_DATASETS`` folder with the COCO and LVIS data of the module docstring,
    set as ``DETECTRON2_DATASETS`` (read by the LVIS recipes when their config is loaded) and
    with detectron2's ``coco_2017_{train,val}`` registered from it, as detectron2's built-in
    registration does with that root. ``lvis_v1_{train,val}_json`` are left for the LVIS
    recipes to register; everything is put back afterwards. Returns the root."""
    root = str(tmp_path_factory.mktemp("detectron2_datasets"))
    photos = _labelme_objects()
    for split in ("train", "val"):
        _link_images(root, split, photos)
        write_coco_json(
            os.path.join(root, "coco", "annotations", f"instances_{split}2017.json"), photos
        )
        write_lvis_json(os.path.join(root, "lvis", f"lvis_v1_{split}.json"), photos, split, photos)

    def register_coco():
        for split, name in COCO_NAMES.items():
            register_coco_instances(
                name,
                _get_builtin_metadata("coco"),
                os.path.join(root, "coco", "annotations", f"instances_{split}2017.json"),
                os.path.join(root, "coco", f"{split}2017"),
            )

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DETECTRON2_DATASETS", root)
        with _registered_as(list(COCO_NAMES.values()), register_coco):
            with _registered_as(list(LVIS_NAMES.values()), None):
                yield root
