"""Command line of spar: one subcommand per workflow step.

Every step that the Snakemake workflow runs is a subcommand here, so each one
also runs by hand. Settings come from ``--params params.yaml`` or, as the
workflow passes them, from ``--config JSON``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from spar import __version__
from spar import config as config_mod

log = logging.getLogger("spar")


def _add_config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", type=Path, default=Path("params.yaml"), help="parameter file (default: params.yaml)")
    parser.add_argument("--config", dest="config_json", default=None, help="parameters as a JSON object; overrides --params")


def _tree(args) -> dict:
    return config_mod.load(args.params, args.config_json)


# --- step implementations (imported lazily: torch takes seconds to import) ------------


def _tags(pairs: list[str] | None) -> dict:
    """Parse ``--tag KEY=VALUE`` options into a dict of strings."""
    tags = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--tag {pair!r} is not KEY=VALUE; write for example --tag variant=no_spatial_embedding")
        tags[key] = value
    return tags


def cmd_synth_m3nvc(args) -> None:
    from spar.synth.m3nvc import synthesize

    synthesize(args.out, config_mod.get(_tree(args), "synth.m3nvc"))


def cmd_ingest_m3nvc(args) -> None:
    from spar.ingest.m3nvc import ingest

    ingest(args.raw, args.out, config_mod.get(_tree(args), "ingest.m3nvc"))


def cmd_ingest_coal_node(args) -> None:
    from spar.ingest.coal_node import ingest

    ingest(args.raw, args.out, config_mod.get(_tree(args), "ingest.coal_node"))


def cmd_synth_ridgecrest(args) -> None:
    from spar.synth.ridgecrest import synthesize

    synthesize(args.out, config_mod.get(_tree(args), "synth.ridgecrest"))


def cmd_synth_realworld(args) -> None:
    from spar.synth.realworld import synthesize

    synthesize(args.out, config_mod.get(_tree(args), "synth.realworld"))


def cmd_ingest_ridgecrest(args) -> None:
    from spar.ingest.ridgecrest import ingest

    ingest(args.raw, args.out, config_mod.get(_tree(args), "ingest.ridgecrest"))


def cmd_ingest_realworld(args) -> None:
    from spar.ingest.realworld import ingest

    ingest(args.raw, args.out, config_mod.get(_tree(args), "ingest.realworld"))


def cmd_pretrain(args) -> None:
    from spar.train.pretrain import pretrain

    pretrain(store=args.store, out=args.out, method=args.method, seed=args.seed, tree=_tree(args), dataset=args.dataset,
             exclude_groups=args.exclude_groups)


def cmd_placement(args) -> None:
    from spar.train.placement import place

    place(checkpoint=args.checkpoint, store=args.store, group=args.group, mode=args.mode, out=args.out, seed=args.seed,
          tree=_tree(args))


def cmd_embed(args) -> None:
    from spar.train.embed import embed

    embed(checkpoint=args.checkpoint, store=args.store, out=args.out, group=args.group, tree=_tree(args),
          drop_prob=args.drop_prob, drop_seed=args.drop_seed)


def cmd_finetune(args) -> None:
    from spar.train import detection, finetune

    train = {
        "localization": finetune.finetune_localization,
        "classification": finetune.finetune_classification,
        "detection": detection.finetune_detection,
    }[args.task]
    train(embeddings=args.embeddings, out_dir=args.out_dir, label_ratio=args.label_ratio, seed=args.seed,
          tree=_tree(args), task=args.task_settings, tags=_tags(args.tag))


def cmd_table1(args) -> None:
    from spar.eval.tables import write_table1

    write_table1(args.metrics, args.out, methods=args.methods, label_ratios=args.label_ratios)
    if args.summary:
        from spar.eval.summary import write_table_summary

        write_table_summary(args.out, args.summary)


def cmd_table3(args) -> None:
    from spar.eval.tables import write_table3

    write_table3(args.ridgecrest or [], args.har or [], args.out, methods=args.methods)
    if args.summary:
        from spar.eval.summary import write_table_summary

        write_table_summary(args.out, args.summary)


def cmd_experiment_table(args) -> None:
    from spar.eval.experiment_tables import write_experiment_table

    rows = [(row[0], [Path(p) for p in row[1:]]) for row in args.row]
    write_experiment_table(args.table, rows, args.out, columns=args.columns, row_titles=_tags(args.row_title),
                           summary=args.summary)


def cmd_fig6(args) -> None:
    from spar.eval.figures import plot_fig6

    plot_fig6(args.predictions, args.store, args.out)


def cmd_confusion(args) -> None:
    from spar.eval.figures import plot_confusion_matrices

    plot_confusion_matrices(args.metrics, args.out, title=args.title)


def cmd_fig3(args) -> None:
    from spar.eval.figures import plot_fig3

    plot_fig3(args.predictions, args.store, args.out, scene=args.scene)


def cmd_report_coal_node(args) -> None:
    from spar.eval.report import write_coal_node_report

    write_coal_node_report(
        store=args.store, checkpoints=args.checkpoints, out=args.out, tree=_tree(args)
    )


def cmd_transfer_coal_node(args) -> None:
    from spar.train.transfer import transfer_coal_node

    transfer_coal_node(checkpoint=args.checkpoint, head_path=args.head, reference_store=args.reference_store,
                       out=args.out, tree=_tree(args), raw_dir=args.raw)


def cmd_table2(args) -> None:
    from spar.eval.tables import write_table2

    write_table2(args.metrics, args.out, methods=args.methods, radii=args.radii)
    if args.summary:
        from spar.eval.summary import write_table_summary

        write_table_summary(args.out, args.summary)


def cmd_fig4(args) -> None:
    from spar.eval.figures import plot_fig4

    plot_fig4(args.predictions, args.store, args.out, scene=args.scene, n_windows=args.windows,
              threshold=args.threshold, radius=args.radius)


def cmd_methods(args) -> None:
    from spar.models.registry import METHODS

    width = max(len(name) for name in METHODS)
    for name, spec in METHODS.items():
        sys.stdout.write(f"{name:<{width}}  {spec.family:<22}  {spec.description}\n")


# --- parser -----------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="spar", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    parser.add_argument("--version", action="version", version=f"spar {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    synth = commands.add_parser("synth", help="write simulated raw data in a real dataset's release format")
    synth_kinds = synth.add_subparsers(dest="dataset", required=True)
    p = synth_kinds.add_parser("m3nvc", help="vehicle scenes in the M3N-VC parquet layout")
    p.add_argument("--out", type=Path, required=True, help="folder that receives one subfolder per scene")
    _add_config_args(p)
    p.set_defaults(func=cmd_synth_m3nvc)
    p = synth_kinds.add_parser("ridgecrest", help="earthquakes in the SCEDC archive layout, station files and catalogs")
    p.add_argument("--out", type=Path, required=True, help="folder that receives continuous_waveforms/, stations/ and catalog/")
    _add_config_args(p)
    p.set_defaults(func=cmd_synth_ridgecrest)
    p = synth_kinds.add_parser("realworld", help="body-worn sensors in the RealWorld-HAR zip layout")
    p.add_argument("--out", type=Path, required=True, help="folder that receives one proband<N> folder per subject")
    _add_config_args(p)
    p.set_defaults(func=cmd_synth_realworld)

    ingest = commands.add_parser("ingest", help="read raw files and write the dataset's tensor store")
    ingest_kinds = ingest.add_subparsers(dest="dataset", required=True)
    p = ingest_kinds.add_parser("m3nvc", help="M3N-VC scene folders (parquet)")
    p.add_argument("--raw", type=Path, required=True, help="folder with one subfolder per scene")
    p.add_argument("--out", type=Path, required=True, help="Zarr store to write")
    _add_config_args(p)
    p.set_defaults(func=cmd_ingest_m3nvc)
    p = ingest_kinds.add_parser("ridgecrest", help="SCEDC archive, station file and catalog (Ridgecrest region)")
    p.add_argument("--raw", type=Path, required=True, help="folder with continuous_waveforms/ and the station and catalog files")
    p.add_argument("--out", type=Path, required=True, help="Zarr store to write")
    _add_config_args(p)
    p.set_defaults(func=cmd_ingest_ridgecrest)
    p = ingest_kinds.add_parser("realworld", help="RealWorld-HAR subject folders (zipped CSV)")
    p.add_argument("--raw", type=Path, required=True, help="folder with one proband<N> folder per subject")
    p.add_argument("--out", type=Path, required=True, help="Zarr store to write")
    _add_config_args(p)
    p.set_defaults(func=cmd_ingest_realworld)
    p = ingest_kinds.add_parser("coal-node", aliases=["coal_node"], help="opsdata-coal-node recordings (miniSEED, StationXML, QuakeML)")
    p.add_argument("--raw", type=Path, default=None, help="dataset folder (default: the installed opsdata-coal-node package)")
    p.add_argument("--out", type=Path, required=True, help="Zarr store to write")
    _add_config_args(p)
    p.set_defaults(func=cmd_ingest_coal_node)

    p = commands.add_parser("pretrain", help="self-supervised pretraining of one method on one store")
    p.add_argument("--store", type=Path, required=True)
    p.add_argument("--dataset", required=True, help="dataset key of params.yaml 'datasets' (tokenisation)")
    p.add_argument("--method", required=True, help="registered method name, see `spar methods`")
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--out", type=Path, required=True, help="final checkpoint path (model.pt)")
    p.add_argument("--exclude-groups", nargs="*", default=[], metavar="GROUP",
                   help="groups (scenes, subjects or events) whose windows are left out of pretraining, for example h08 h24")
    _add_config_args(p)
    p.set_defaults(func=cmd_pretrain)

    p = commands.add_parser("placement", help="structural positions for the nodes of a group that pretraining never saw")
    p.add_argument("--checkpoint", type=Path, required=True, help="pretraining checkpoint (model.pt)")
    p.add_argument("--store", type=Path, required=True, help="the tensor store the checkpoint was pretrained on")
    p.add_argument("--group", required=True, help="group whose unseen nodes get positions (for example h24)")
    p.add_argument("--mode", required=True, choices=["random", "fitted"],
                   help="random: copy the positions of learned nodes drawn at random; fitted: then fit them to the pretraining loss")
    p.add_argument("--seed", type=int, required=True, help="seed of the draw and of the fitting")
    p.add_argument("--out", type=Path, required=True,
                   help="checkpoint to write; <stem>.placement.json is written beside it")
    _add_config_args(p)
    p.set_defaults(func=cmd_placement)

    p = commands.add_parser("embed", help="post-fusion embeddings of a frozen encoder for one group of windows")
    p.add_argument("--checkpoint", type=Path, required=True)
    p.add_argument("--store", type=Path, required=True)
    p.add_argument("--group", required=True, help="scene, subject or event group to embed (for example h24)")
    p.add_argument("--out", type=Path, required=True, help="output .npz")
    p.add_argument("--drop-prob", type=float, default=0.0,
                   help="probability that each node's message of each window is lost (lossy links); default 0")
    p.add_argument("--drop-seed", type=int, default=0, help="seed of the message drops")
    _add_config_args(p)
    p.set_defaults(func=cmd_embed)

    finetune = commands.add_parser("finetune", help="train a task head on frozen embeddings")
    tasks = finetune.add_subparsers(dest="task", required=True)
    for name, description, default_task, outputs in (
        ("localization", "single-object localization with a transformer head (MSE)", "localization",
         "metrics.json, predictions.csv and head.pt"),
        ("classification", "classification with a linear head (cross-entropy)", "activity", "metrics.json and predictions.csv"),
        ("detection", "multi-object classification and localization with a set-prediction head (mAP@r)", "detection",
         "metrics.json, predictions.csv, ground_truth.csv and head.pt"),
    ):
        p = tasks.add_parser(name, help=description)
        p.add_argument("--embeddings", type=Path, required=True, help="embeddings .npz written by `spar embed`")
        p.add_argument("--label-ratio", type=float, required=True, help="fraction of the labeled training windows used")
        p.add_argument("--seed", type=int, required=True)
        p.add_argument("--out-dir", type=Path, required=True, help=f"receives {outputs}")
        p.add_argument("--task", dest="task_settings", default=default_task,
                       help=f"section of params.yaml 'finetune' with the head settings (default: {default_task})")
        p.add_argument("--tag", action="append", metavar="KEY=VALUE",
                       help="extra field written into metrics.json, such as the ablation a run belongs to (repeatable)")
        _add_config_args(p)
        p.set_defaults(func=cmd_finetune)

    table = commands.add_parser("table", help="aggregate run metrics into a paper table")
    table_kinds = table.add_subparsers(dest="table", required=True)
    p = table_kinds.add_parser("table1", help="single-vehicle localization")
    p.add_argument("--metrics", type=Path, nargs="+", required=True, help="metrics.json of every run")
    p.add_argument("--methods", nargs="+", required=True, help="row order")
    p.add_argument("--label-ratios", type=float, nargs="+", required=True, help="column order")
    p.add_argument("--out", type=Path, required=True, help="CSV path; a Markdown twin is written beside it")
    p.add_argument("--summary", type=Path, default=None, help="also write the mean columns as JSON (for dvc metrics)")
    p.set_defaults(func=cmd_table1)

    p = table_kinds.add_parser("table2", help="multi-vehicle classification and localization (mAP@r)")
    p.add_argument("--metrics", type=Path, nargs="+", required=True, help="metrics.json of every detection run")
    p.add_argument("--methods", nargs="+", required=True, help="row order")
    p.add_argument("--radii", type=float, nargs="+", default=[4.0, 6.0, 8.0, 10.0],
                   help="matching radii in metres, column order (default: 4 6 8 10)")
    p.add_argument("--out", type=Path, required=True, help="CSV path; a Markdown twin is written beside it")
    p.add_argument("--summary", type=Path, default=None, help="also write the mean columns as JSON (for dvc metrics)")
    p.set_defaults(func=cmd_table2)

    p = table_kinds.add_parser("table3", help="earthquake localization (Ridgecrest) and activity recognition (HAR)")
    p.add_argument("--ridgecrest", type=Path, nargs="*", help="metrics.json of every Ridgecrest run")
    p.add_argument("--har", type=Path, nargs="*", help="metrics.json of every RealWorld-HAR run")
    p.add_argument("--methods", nargs="+", required=True, help="row order")
    p.add_argument("--out", type=Path, required=True, help="CSV path; a Markdown twin is written beside it")
    p.add_argument("--summary", type=Path, default=None, help="also write the mean columns as JSON (for dvc metrics)")
    p.set_defaults(func=cmd_table3)

    for name, description in (
        ("table5", "single-vehicle classification"),
        ("table6", "single-vehicle localization under message drop (columns: drop probabilities)"),
        ("table7", "single-vehicle localization on an unseen placement"),
        ("table8", "ablations and masking strategies of SPAR"),
    ):
        p = table_kinds.add_parser(name, help=description)
        p.add_argument("--row", nargs="+", action="append", required=True, metavar="NAME_THEN_PATHS",
                       help="a row: its name, then the metrics.json of its runs (repeat for each row, in order)")
        p.add_argument("--columns", type=float, nargs="+", default=None,
                       help="values of the column field, in order; required by table6 (its drop probabilities)")
        p.add_argument("--row-title", action="append", metavar="NAME=TITLE", help="Markdown label of a row (repeatable)")
        p.add_argument("--out", type=Path, required=True, help="CSV path; a Markdown twin is written beside it")
        p.add_argument("--summary", type=Path, default=None, help="also write the mean of each cell as JSON (for dvc metrics)")
        p.set_defaults(func=cmd_experiment_table)

    figure = commands.add_parser("figure", help="draw a paper figure")
    figure_kinds = figure.add_subparsers(dest="figure", required=True)
    p = figure_kinds.add_parser("fig3", help="single-vehicle predictions vs ground truth with node positions")
    p.add_argument("--predictions", type=Path, nargs="+", required=True, help="predictions.csv, one per method")
    p.add_argument("--store", type=Path, required=True, help="tensor store, for node positions")
    p.add_argument("--scene", required=True)
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(func=cmd_fig3)

    p = figure_kinds.add_parser("fig4", help="multi-vehicle detections of example windows: true and false positives, misses")
    p.add_argument("--predictions", type=Path, nargs="+", required=True,
                   help="predictions.csv of a detection run, one per method (one row of panels each)")
    p.add_argument("--store", type=Path, required=True, help="tensor store, for node positions")
    p.add_argument("--scene", required=True)
    p.add_argument("--windows", type=int, default=4, help="number of example test windows with vehicles (default: 4)")
    p.add_argument("--threshold", type=float, default=0.5, help="minimum confidence of a drawn prediction (default: 0.5)")
    p.add_argument("--radius", type=float, default=4.0, help="matching radius in metres (default: 4)")
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(func=cmd_fig4)

    p = figure_kinds.add_parser("fig6", help="earthquake epicenters: predicted vs catalog, with stations")
    p.add_argument("--predictions", type=Path, nargs="+", required=True, help="predictions.csv, one per method")
    p.add_argument("--store", type=Path, required=True, help="tensor store, for stations and the ENU origin")
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(func=cmd_fig6)
    p = figure_kinds.add_parser("confusion", help="confusion matrices (Figures 5 and 7)")
    p.add_argument("--metrics", type=Path, nargs="+", required=True, help="metrics.json of a classification run, one per method")
    p.add_argument("--title", required=True)
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(func=cmd_confusion)

    report = commands.add_parser("report", help="summarise a run on real recordings")
    report_kinds = report.add_subparsers(dest="dataset", required=True)
    p = report_kinds.add_parser("coal-node", aliases=["coal_node"], help="what was ingested, the loss curve and embedding shapes")
    p.add_argument("--store", type=Path, required=True)
    p.add_argument("--checkpoints", type=Path, nargs="+", required=True)
    p.add_argument("--out", type=Path, required=True)
    _add_config_args(p)
    p.set_defaults(func=cmd_report_coal_node)

    transfer = commands.add_parser("transfer", help="apply a trained encoder and head to another dataset")
    transfer_kinds = transfer.add_subparsers(dest="dataset", required=True)
    p = transfer_kinds.add_parser("coal-node", aliases=["coal_node"], help="Ridgecrest localization on the coal-mine events")
    p.add_argument("--checkpoint", type=Path, required=True, help="Ridgecrest pretraining checkpoint (model.pt)")
    p.add_argument("--head", type=Path, required=True, help="head.pt of a Ridgecrest localization run")
    p.add_argument("--reference-store", type=Path, required=True, help="Ridgecrest tensor store, for its normalisation")
    p.add_argument("--raw", type=Path, default=None, help="dataset folder (default: the installed opsdata-coal-node package)")
    p.add_argument("--out", type=Path, required=True, help="CSV of catalog vs predicted hypocenters")
    _add_config_args(p)
    p.set_defaults(func=cmd_transfer_coal_node)

    p = commands.add_parser("methods", help="list the registered pretraining methods")
    p.set_defaults(func=cmd_methods)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    try:
        args.func(args)
    except (config_mod.ConfigError, FileNotFoundError, ValueError) as err:
        log.error("%s", err)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
