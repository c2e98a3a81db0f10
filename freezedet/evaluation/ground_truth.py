"""Checks of evaluation ground truth that would otherwise give a silently wrong AP: images with
more objects than the detections AP counts, and images that were never predicted (skipped as
unreadable) whose objects would count as missed. Used by the evaluators and by
``tools/evaluate.py`` alike."""

from typing import Dict, Iterable, List, Optional, Sequence

__all__ = [
    "auto_max_dets",
    "dense_images_message",
    "left_out_ids",
    "left_out_message",
    "objects_per_image",
]


def auto_max_dets(max_objects: int) -> int:
    """Detections per image counted by COCO AP for ``max_dets_per_image="auto"``: twice the most
    objects in one ground-truth image, at least COCO's 100 (room for false positives ranked above
    true ones, so AP is not capped by the count on the busiest image)."""
    return max(100, 2 * int(max_objects))


def objects_per_image(images: Iterable[dict], annotations: Iterable[dict]) -> Dict[int, int]:
    """``{image id: number of non-crowd annotations}`` of a COCO / LVIS dict's lists (every
    image listed, 0 for an image without objects)."""
    counts = {im["id"]: 0 for im in images}
    for a in annotations:
        if not a.get("iscrowd", 0) and a.get("image_id") in counts:
            counts[a["image_id"]] += 1
    return counts


def _name(image_id, file_names: Dict) -> str:
    name = file_names.get(image_id)
    return f"image {image_id}" + (f" ({name})" if name else "")


def dense_images_message(
    counts: Dict[int, int], file_names: Dict, max_dets: int, *, source: str, fix: str
) -> Optional[str]:
    """A warning when an image of ``source`` has more objects than ``max_dets`` (the detections
    per image AP counts: recall and AP are then capped), naming the busiest image and how many
    are over; None when none is.

    Args:
        counts (dict): :func:`objects_per_image`.
        file_names (dict): image id -> file name, for the message.
        fix (str): how to count more, e.g. "--max-dets auto".
    """
    over = sorted((n, i) for i, n in counts.items() if n > max_dets)
    if not over:
        return None
    most, busiest = over[-1]
    return (
        f"{source}: {_name(busiest, file_names)} has {most} ground-truth objects but AP counts at "
        f"most {max_dets} detections per image ({len(over)} image(s) have more than {max_dets}), "
        f"so recall and AP are capped there. {fix} (auto: {auto_max_dets(most)}, twice the "
        "busiest image; AP is then not comparable with AP at COCO's 100)."
    )


def left_out_message(
    gt_ids: Sequence,
    seen: Iterable,
    counts: Dict[int, int],
    file_names: Dict,
    *,
    source: str,
    left_out: bool = True,
) -> Optional[str]:
    """A warning when ground-truth images of ``source`` got no prediction (skipped from the test
    set, e.g. as unreadable with ``skip_bad_images=True``), with how many images and objects and
    (``left_out``) that they are left out of AP; None when every image was predicted."""
    missing = left_out_ids(gt_ids, seen)
    if not missing:
        return None
    boxes = sum(counts.get(i, 0) for i in missing)
    shown = ", ".join(_name(i, file_names) for i in missing[:5])
    return (
        f"{source}: {len(missing)} of {len(gt_ids)} ground-truth images ({boxes} objects) were "
        "not predicted (skipped from the test set, e.g. unreadable with skip_bad_images=True)"
        + (" and are left out of AP" if left_out else "")
        + f": {shown}{' ...' if len(missing) > 5 else ''}"
        + (f". AP is over the other {len(gt_ids) - len(missing)} images." if left_out else "")
    )


def left_out_ids(gt_ids: Sequence, seen: Iterable) -> List:
    """The ids of ``gt_ids`` not in ``seen``, in order."""
    seen = set(seen)
    return [i for i in gt_ids if i not in seen]
