"""The `stf` console script: the only module that reads argv or `params.yaml`.

Every subcommand takes `--params` and explicit input/output paths, never prompts, logs to
stderr, and exits non-zero with a one-line `stf: error: ...` on bad input. Snakemake and
DVC call exactly these commands (see `workflow/rules/*.smk` and `dvc.yaml`).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from stf.config import DATASETS, SETTINGS, STREAMS, Params, ParamsError, load_params

log = logging.getLogger("stf")


class CLIError(Exception):
    """A user-facing error: printed as one line, exit code 2."""


# --------------------------------------------------------------------------- helpers


def _params(args: argparse.Namespace) -> Params:
    return load_params(args.params)


def _dataset_of(params: Params, setting: str) -> str:
    return params.setting(setting).dataset


def _print_json(obj: object) -> None:
    """The command's summary on stdout; under torchrun only rank 0 prints it."""
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps(obj, indent=2, sort_keys=True))


# --------------------------------------------------------------------------- data stages


def cmd_synth(args: argparse.Namespace) -> None:
    p = _params(args)
    from stf.data.synth import synthesize

    summary = synthesize(args.dataset, Path(args.out), p.synth, p.sizes.synth)
    _print_json(summary)


def cmd_fetch(args: argparse.Namespace) -> None:
    p = _params(args)
    from stf.data.fetch import fetch

    summary = fetch(args.dataset, getattr(p.data, args.dataset), Path(args.out))
    _print_json(summary)


def cmd_raw(args: argparse.Namespace) -> None:
    """Pipeline stage: synthesize or fetch, as the active profile says."""
    p = _params(args)
    if p.sizes.source == "synthetic":
        cmd_synth(args)
    else:
        cmd_fetch(args)


def cmd_preprocess(args: argparse.Namespace) -> None:
    p = _params(args)
    from stf.data.preprocess import preprocess

    missing = args.missing_list or getattr(p.data, f"{args.dataset}_missing", None)
    summary = preprocess(
        args.dataset,
        Path(args.raw),
        Path(args.out),
        p.preprocess,
        frames=p.sizes.frames,
        missing_list=Path(missing) if missing else None,
        strict=args.strict,
    )
    _print_json(summary)


def cmd_split(args: argparse.Namespace) -> None:
    p = _params(args)
    from stf.data.splits import make_split_file

    summary = make_split_file(
        Path(args.data), p.setting(args.setting), p.split, Path(args.out), val_percent=p.sizes.val_percent
    )
    _print_json(summary)


# --------------------------------------------------------------------------- training stages


def _seed(p: Params, args: argparse.Namespace) -> int:
    """--seed, or the active profile's first seed."""
    return int(p.sizes.seeds[0] if args.seed is None else args.seed)


def cmd_train(args: argparse.Namespace) -> None:
    p = _params(args)
    from stf.train import train_baseline

    metrics = train_baseline(
        p,
        setting=args.setting,
        stream=args.stream,
        data=Path(args.data),
        split=Path(args.split),
        out_dir=Path(args.out),
        fraction=args.fraction,
        workdir=Path(args.workdir) if args.workdir else None,
        resume=args.resume,
        seed=_seed(p, args),
    )
    _print_json(metrics)


def _finetune_kind(p: Params, args: argparse.Namespace) -> tuple[str | None, str | None]:
    if (args.variant is None) == (args.control is None):
        raise CLIError("give exactly one of --variant (an STF loss set) and --control (ft or stf-ce)")
    if args.variant is not None and args.variant not in p.stf.variants:
        raise CLIError(f"unknown STF variant {args.variant!r}; params stf.variants has {sorted(p.stf.variants)}")
    return args.variant, args.control


def cmd_finetune(args: argparse.Namespace) -> None:
    p = _params(args)
    variant, control = _finetune_kind(p, args)
    if args.member and control != "ft":
        raise CLIError("--member > 0 exists only for --control ft (the second MS-G3D+ft, msg3d-ft-b)")
    from stf.train import finetune, read_selection

    lr = read_selection(Path(args.lr_from)) if args.lr_from else None
    metrics = finetune(
        p,
        setting=args.setting,
        stream=args.stream,
        variant=variant,
        control=control,
        member=args.member,
        data=Path(args.data),
        split=Path(args.split),
        init=Path(args.init),
        out_dir=Path(args.out),
        fraction=args.fraction,
        workdir=Path(args.workdir) if args.workdir else None,
        resume=args.resume,
        seed=_seed(p, args),
        lr=lr,
    )
    _print_json(metrics)


def cmd_select_lr(args: argparse.Namespace) -> None:
    p = _params(args)
    variant, control = _finetune_kind(p, args)
    from stf.train import select_lr

    result = select_lr(
        p, args.setting, args.stream, variant, Path(args.data), Path(args.split), Path(args.init), Path(args.out),
        control=control, seed=_seed(p, args),
    )  # fmt: skip
    _print_json(result)


def cmd_evaluate(args: argparse.Namespace) -> None:
    p = _params(args)
    from stf.evaluate import evaluate_ensemble

    metrics = evaluate_ensemble(
        p,
        setting=args.setting,
        stream=args.stream,
        data=Path(args.data),
        split=Path(args.split),
        models=[Path(m) for m in args.model],
        out_dir=Path(args.out),
    )
    _print_json(metrics)


def cmd_probe(args: argparse.Namespace) -> None:
    p = _params(args)
    from stf.train import linear_probe

    metrics = linear_probe(
        p,
        setting=args.setting,
        stream=args.stream,
        data=Path(args.data),
        split=Path(args.split),
        models=[Path(m) for m in args.model],
        out_dir=Path(args.out),
        workdir=Path(args.workdir) if args.workdir else None,
        resume=args.resume,
        seed=_seed(p, args),
    )
    _print_json(metrics)


def cmd_fuse(args: argparse.Namespace) -> None:
    p = _params(args)
    from stf.fuse import fuse_files

    metrics = fuse_files(Path(args.joint), Path(args.bone), p.fuse, Path(args.out))
    _print_json(metrics)


def cmd_flops(args: argparse.Namespace) -> None:
    p = _params(args)
    from stf.flops import compare_flops

    result = compare_flops(
        p, dataset=args.dataset, frames=args.frames, persons=args.persons, in_channels=args.in_channels
    )
    if args.out:
        from stf.io import write_json_atomic

        write_json_atomic(Path(args.out), result)
    print(json.dumps(result, sort_keys=True))


def cmd_report(args: argparse.Namespace) -> None:
    p = _params(args)
    from stf.report import build_report

    written = build_report(p, models_dir=Path(args.models), results_dir=Path(args.results), out_dir=Path(args.out))
    _print_json({"written": [str(w) for w in written]})


def cmd_evidence_report(args: argparse.Namespace) -> None:
    p = _params(args)
    from stf.evidence import build_evidence_report

    written = build_evidence_report(
        p, models_dir=Path(args.models), split=Path(args.split), out_dir=Path(args.out),
        setting=args.setting, stream=args.stream,
    )  # fmt: skip
    _print_json({"written": [str(w) for w in written]})


def cmd_schema(args: argparse.Namespace) -> None:
    from stf.config import params_json_schema_text
    from stf.io import write_text_atomic

    text = params_json_schema_text()
    if args.out:
        write_text_atomic(Path(args.out), text)
    else:
        sys.stdout.write(text)


# --------------------------------------------------------------------------- parser


def _add_common(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")


def _add_train_io(sp: argparse.ArgumentParser, *, needs_out: bool = True) -> None:
    sp.add_argument("--setting", required=True, choices=SETTINGS)
    sp.add_argument("--stream", required=True, choices=STREAMS)
    sp.add_argument("--data", required=True, help="preprocessed parquet of the setting's dataset")
    sp.add_argument("--split", required=True, help="split parquet of the setting")
    if needs_out:
        sp.add_argument("--out", required=True, help="output directory")


def _add_seed(sp: argparse.ArgumentParser) -> None:
    sp.add_argument(
        "--seed", type=int, help="initialisation and shuffle seed (default: the profile's first seed, params seeds)"
    )


def _add_finetune_kind(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--variant", help="an STF loss set: a key of params stf.variants (dcg, e, m2, ...)")
    sp.add_argument(
        "--control",
        choices=("ft", "stf-ce"),
        help="a cross-entropy control instead: ft = MS-G3D+ft (no STF modules), stf-ce = STF+ce (modules, all λ = 0)",
    )
    sp.add_argument("--init", required=True, help="baseline model directory (holds model.pt)")


def _add_resume(sp: argparse.ArgumentParser) -> None:
    sp.add_argument(
        "--workdir",
        help="where per-epoch resume checkpoints live (outside the declared outputs; default: <out>.work)",
    )
    sp.add_argument("--resume", action="store_true", help="continue from <workdir>/last.pt when it exists")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stf",
        description="To-a-T Spatio-Temporal Focus on MS-G3D: raw skeletons -> parquet -> models -> report.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, fn: Callable[[argparse.Namespace], None], help_: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help_, description=help_)
        _add_common(sp)
        sp.set_defaults(func=fn)
        return sp

    sp = add("synth", cmd_synth, "write a synthetic dataset in the real raw formats")
    sp.add_argument("--dataset", required=True, choices=DATASETS)
    sp.add_argument("--out", required=True, help="output directory of raw files")

    sp = add("fetch", cmd_fetch, "verify and unpack the real archives named in params.yaml")
    sp.add_argument("--dataset", required=True, choices=DATASETS)
    sp.add_argument("--out", required=True, help="output directory of raw files")

    sp = add("raw", cmd_raw, "pipeline stage: synth or fetch, as the active profile's source says")
    sp.add_argument("--dataset", required=True, choices=DATASETS)
    sp.add_argument("--out", required=True, help="output directory of raw files")

    sp = add("preprocess", cmd_preprocess, "raw files -> one parquet per dataset (+ <out>.rejected.csv)")
    sp.add_argument("--dataset", required=True, choices=DATASETS)
    sp.add_argument("--raw", required=True, help="directory of raw files (searched recursively)")
    sp.add_argument("--out", required=True, help="output parquet file")
    sp.add_argument("--missing-list", help="NTU missing-skeleton list (default: params data.<dataset>_missing)")
    sp.add_argument("--strict", action="store_true", help="exit non-zero when any file is rejected")

    sp = add("split", cmd_split, "benchmark split and stratified training subsets of one setting")
    sp.add_argument("--setting", required=True, choices=SETTINGS)
    sp.add_argument("--data", required=True, help="preprocessed parquet")
    sp.add_argument("--out", required=True, help="output split parquet")

    sp = add("train", cmd_train, "train the MS-G3D baseline of one setting and stream")
    _add_train_io(sp)
    sp.add_argument("--fraction", type=int, default=100, help="percent of the training part (default 100)")
    _add_seed(sp)
    _add_resume(sp)

    sp = add("finetune", cmd_finetune, "fine-tune one STF variant, or a cross-entropy control, from a baseline")
    _add_train_io(sp)
    _add_finetune_kind(sp)
    sp.add_argument(
        "--member", type=int, default=0, choices=(0, 1), help="with --control ft: 1 = the second model (msg3d-ft-b)"
    )
    sp.add_argument("--lr-from", help="selection.json of `stf select-lr` (default lr: params stf.lr)")
    sp.add_argument("--fraction", type=int, default=100, help="percent of the training part (default 100)")
    _add_seed(sp)
    _add_resume(sp)

    sp = add("select-lr", cmd_select_lr, "choose the fine-tuning lr of params stf.lr_grid on the validation part")
    _add_train_io(sp)
    _add_finetune_kind(sp)
    _add_seed(sp)

    sp = add("evaluate", cmd_evaluate, "test scores of one model or a softmax-averaged ensemble")
    _add_train_io(sp)
    sp.add_argument("--model", required=True, action="append", help="model directory; repeat to ensemble")

    sp = add("probe", cmd_probe, "linear probe: frozen model(s), new head trained on the target setting")
    _add_train_io(sp)
    sp.add_argument("--model", required=True, action="append", help="source model directory; repeat to ensemble")
    _add_seed(sp)
    _add_resume(sp)

    sp = add("fuse", cmd_fuse, "joint+bone fusion: mean of softmax probabilities")
    sp.add_argument("--joint", required=True, help="joint model/ensemble directory (scores.parquet)")
    sp.add_argument("--bone", required=True, help="bone model/ensemble directory (scores.parquet)")
    sp.add_argument("--out", required=True, help="output directory")

    sp = add("flops", cmd_flops, "FLOPs and parameters of MS-G3D vs STF at full (paper) width, as JSON")
    sp.add_argument("--dataset", required=True, choices=DATASETS)
    sp.add_argument("--frames", type=int, default=300)
    sp.add_argument("--persons", type=int, default=2)
    sp.add_argument("--in-channels", type=int, default=3)
    sp.add_argument("--out", help="also write the JSON here")

    sp = add("report", cmd_report, "tables, figures and report.md from the model and result directories")
    sp.add_argument("--models", default="models", help="root of model directories")
    sp.add_argument("--results", default="results", help="root of fused results")
    sp.add_argument("--out", default="results", help="where tables, figures and report.md go")

    sp = add("evidence-report", cmd_evidence_report, "one cell's controls, seeds and paired tests: report.md + summary.json")
    sp.add_argument("--models", default="models", help="root of model directories")
    sp.add_argument("--split", required=True, help="split parquet of the setting (train/test sample counts)")
    sp.add_argument("--setting", default="ntu60-xsub", choices=SETTINGS)
    sp.add_argument("--stream", default="joint", choices=STREAMS)
    sp.add_argument("--out", default="results/evidence", help="where report.md, summary.json and figures go")

    sp = add("schema", cmd_schema, "print (or write) the JSON schema of params.yaml")
    sp.add_argument("--out", help="write here instead of stdout")

    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        args.func(args)
    except (ParamsError, CLIError) as err:
        print(f"stf: error: {err}", file=sys.stderr)
        return 2
    except (FileNotFoundError, ValueError) as err:
        # readers and validators raise these with the file and the problem named
        print(f"stf: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("stf: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
