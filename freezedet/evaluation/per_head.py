"""One evaluator per detector for models that return several detectors' outputs per image."""

from typing import Dict

from detectron2.evaluation import DatasetEvaluator

__all__ = ["PerHeadEvaluator"]


class PerHeadEvaluator(DatasetEvaluator):
    """Evaluates the outputs of several detectors from one pass over a dataset.

    The model returns, per image, ``{head name: that detector's output dict}`` (e.g.
    ``SharedTrunkDetectors`` with ``eval_head=ALL_HEADS``); each head's outputs go to its own
    evaluator and the results come back keyed ``"<head>/<task>"`` (e.g. ``"fpn/bbox"``).
    """

    def __init__(self, evaluators: Dict[str, DatasetEvaluator]):
        """
        Args:
            evaluators (dict[str, DatasetEvaluator]): head name -> its evaluator (give each its
                own ``output_dir``: they would overwrite each other's result files).
        """
        assert evaluators, "PerHeadEvaluator needs at least one head"
        self._evaluators = dict(evaluators)

    def reset(self):
        for evaluator in self._evaluators.values():
            evaluator.reset()

    def process(self, inputs, outputs):
        for name, evaluator in self._evaluators.items():
            try:
                evaluator.process(inputs, [o[name] for o in outputs])
            except KeyError as e:
                raise KeyError(
                    f"PerHeadEvaluator: an output has no head {name!r} (keys: "
                    f"{sorted(outputs[0])}); the model must return {{head: output}} per image"
                ) from e

    def evaluate(self):
        results = {}
        for name, evaluator in self._evaluators.items():
            # detectron2's evaluators return None / {} on non-main processes
            for task, value in (evaluator.evaluate() or {}).items():
                results[f"{name}/{task}"] = value
        return results
