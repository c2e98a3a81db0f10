#!/usr/bin/env python
"""Run a transfer study (a grid of training runs) and collect its table and plots.

    python tools/transfer_study.py configs/studies/deepforest_effl_lite.py \
        [--output-dir DIR] [--shard i/n] [--num-gpus N] [--collect-only [--from-table T]]
        [--dry-run]

Runs are independent ``tools/train_net.py`` processes writing to ``DIR/runs/<run id>``; finished
runs are skipped, interrupted ones resumed, failed ones reported. ``--shard i/n`` runs a disjoint
part (one per machine or array job, all writing to one shared DIR); ``--collect-only`` builds
``DIR/table.{csv,json,md}`` and ``DIR/plots/*.png`` from whatever runs have finished;
``--collect-only --from-table T`` rebuilds ``DIR/correlations.md`` and the plots from a
``table.json`` (e.g. a committed one) instead of run directories. All logic
lives in ``freezedet.analysis.study`` and ``freezedet.analysis.transfer``.
"""

import argparse
import os
import sys

# only the standard library at the top: --help and argument errors answer before the slow imports
# (torch, detectron2, freezedet) that main() makes
DEBUG_HELP = "show the traceback of an input error (FREEZEDET_DEBUG=1 does the same)"


def argument_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("study", help="study file (LazyConfig .py/.yaml defining `study`)")
    parser.add_argument(
        "--output-dir",
        default=None,
        help="study directory (shared between shards); default output/studies/<study name>",
    )
    parser.add_argument("--shard", default="0/1", help="i/n: run every n-th run from i")
    parser.add_argument("--num-gpus", type=int, default=1, help="processes per run (train_net)")
    parser.add_argument("--collect-only", action="store_true", help="only build table + plots")
    parser.add_argument(
        "--from-table",
        default=None,
        help="with --collect-only: correlations + plots from this table.json, not run dirs",
    )
    parser.add_argument("--dry-run", action="store_true", help="print this shard's commands")
    parser.add_argument("--no-collect", action="store_true", help="skip collection after runs")
    parser.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    return parser


def main(argv=None):
    parser = argument_parser()
    args = parser.parse_args(argv)
    from freezedet.analysis.study import expand_runs, load_study, parse_shard, run_command
    from freezedet.analysis.study import run_study
    from freezedet.analysis.transfer import collect_from_table, collect_study

    study = load_study(args.study)
    name = os.path.splitext(os.path.basename(args.study))[0]
    out = args.output_dir or os.path.join("output", "studies", name)
    if args.from_table:
        if not args.collect_only:
            parser.error("--from-table needs --collect-only")
        paths = collect_from_table(args.from_table, out, title=name)
        print("correlations and plots:\n  " + "\n  ".join(paths))
        return 0
    if args.dry_run:
        from freezedet.analysis.study import run_dir, select_shard

        runs = select_shard(expand_runs(study), parse_shard(args.shard))
        for run in runs:
            print(" ".join(run_command(run, run_dir(out, run), num_gpus=args.num_gpus)))
        print(f"{len(runs)} runs in shard {args.shard}")
        return 0
    failed = []
    if not args.collect_only:
        summary = run_study(study, out, shard=parse_shard(args.shard), num_gpus=args.num_gpus)
        failed = summary["failed"]
        print(
            f"shard {args.shard}: {len(summary['done'])} done, {len(summary['skipped'])} skipped "
            f"(finished before), {len(failed)} failed: {failed}"
        )
    if not args.no_collect:
        paths = collect_study(study, out)
        print("table and plots:\n  " + "\n  ".join(paths))
    return 1 if failed else 0


if __name__ == "__main__":
    argument_parser().parse_args()  # --help, bad arguments: before the slow imports
    from freezedet.utils.errors import run_tool  # noqa: E402

    sys.exit(run_tool(main))
