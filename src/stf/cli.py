"""The `stf` console script: the only module that reads argv or `params.yaml`.

Every subcommand takes `--params` and explicit input/output paths, never prompts, logs to
stderr, and exits non-zero with a one-line `stf: error: ...` on bad input. Snakemake and
DVC call exactly these commands, as the pipeline description `stf.pipeline` writes them
(`workflow/rules/*.smk` read it; `stf dvc-yaml` writes dvc.yaml from it).
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


def _print_json(obj: object) -> None:
    """The command's summary on stdout; under torchrun only rank 0 prints it."""
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps(obj, indent=2, sort_keys=True))


# --------------------------------------------------------------------------- data stages


def cmd_synth(args: argparse.Namespace) -> None:
    p = _params(args)
    from stf.data.synth.synthesize import synthesize

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


def _missing_list(args: argparse.Namespace, p: Params) -> Path | None:
    """The NTU missing-skeleton list: --missing-list, else params data.<dataset>_missing; it must exist."""
    if args.missing_list:
        path = Path(args.missing_list)
        if not path.is_file():
            raise CLIError(f"--missing-list {path}: file not found")
        return path
    value = getattr(p.data, f"{args.dataset}_missing", None)
    if not value:
        return None
    path = Path(value)
    if not path.is_file():
        raise CLIError(
            f"params data.{args.dataset}_missing = {value!r}: file not found (point it at the official "
            "NTU_RGBD*_samples_with_missing_skeletons.txt, or set it to null)"
        )
    return path


def cmd_preprocess(args: argparse.Namespace) -> None:
    p = _params(args)
    from stf.data.preprocess import preprocess

    summary = preprocess(
        args.dataset,
        Path(args.raw),
        Path(args.out),
        p.preprocess,
        frames=p.sizes.frames,
        missing_list=_missing_list(args, p),
        strict=args.strict,
    )
    _print_json(summary)


def cmd_import(args: argparse.Namespace) -> None:
    p = _params(args)
    from stf.data.importer import import_dataset

    summary = import_dataset(
        args.format,
        Path(args.source),
        args.dataset,
        Path(args.out),
        p.preprocess,
        p.sizes.frames,
        missing_list=_missing_list(args, p),
        settings=p.settings,
        split_cfg=p.split,
        splits_out=Path(args.splits_out) if args.splits_out else None,
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
    from stf.stages.train import train_baseline

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
    from stf.stages.train import finetune, read_selection

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
    from stf.stages.train import select_lr

    result = select_lr(
        p, args.setting, args.stream, variant, Path(args.data), Path(args.split), Path(args.init), Path(args.out),
        control=control, seed=_seed(p, args),
    )  # fmt: skip
    _print_json(result)


def cmd_evaluate(args: argparse.Namespace) -> None:
    p = _params(args)
    from stf.stages.evaluate import evaluate_ensemble

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
    from stf.stages.train import linear_probe

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
    from stf.stages.fuse import fuse_files

    metrics = fuse_files(Path(args.joint), Path(args.bone), p.fuse, Path(args.out))
    _print_json(metrics)


def cmd_flops(args: argparse.Namespace) -> None:
    p = _params(args)
    from stf.stages.flops import compare_flops

    result = compare_flops(
        p, dataset=args.dataset, frames=args.frames, persons=args.persons, in_channels=args.in_channels
    )
    if args.out:
        from stf.io import write_json_atomic

        write_json_atomic(Path(args.out), result)
    print(json.dumps(result, sort_keys=True))


def cmd_report(args: argparse.Namespace) -> None:
    p = _params(args)
    from stf.report.build import build_report

    written = build_report(p, models_dir=Path(args.models), results_dir=Path(args.results), out_dir=Path(args.out))
    _print_json({"written": [str(w) for w in written]})


def cmd_predict(args: argparse.Namespace) -> None:
    p = _params(args)
    from stf.stages.predict import predict_files

    results = predict_files(
        p,
        [Path(f) for f in args.files],
        Path(args.model),
        bone_model_dir=Path(args.bone_model) if args.bone_model else None,
        focus_out=Path(args.focus) if args.focus else None,
    )
    if args.json:
        print(json.dumps(results, indent=2))
        return
    for r in results:
        print(r["file"])
        for rank, t in enumerate(r["top5"], start=1):
            print(f"  {rank}. {t['prob']:7.2%}  [{t['index']:3d}] {t['name']}")


def cmd_export(args: argparse.Namespace) -> None:
    p = _params(args)
    from stf.stages.export import export_model

    frames = args.frames if args.frames is not None else p.sizes.frames
    summary = export_model(Path(args.model), p.stf.ensemble, args.format, frames, Path(args.out))
    _print_json(summary)


def cmd_evidence_report(args: argparse.Namespace) -> None:
    p = _params(args)
    from stf.report.evidence import build_evidence_report

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


def cmd_dvc_yaml(args: argparse.Namespace) -> None:
    p = _params(args)
    from stf.io import write_text_atomic
    from stf.pipeline import Pipeline

    text = Pipeline(p).dvc_yaml()
    if args.out:
        write_text_atomic(Path(args.out), text)
    else:
        sys.stdout.write(text)


# --------------------------------------------------------------------------- parser


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows "(default: X)" after every option's help, except required options and flags."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.required or action.default in (None, False, argparse.SUPPRESS) or not action.option_strings:
            return action.help
        return super()._get_help_string(action)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    import stf

    try:
        return version("stf")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
        return stf.__version__


def _add_common(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--params", default="params.yaml", help="params file")


def _add_dataset(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--dataset", required=True, choices=DATASETS, help="which dataset")


def _add_train_io(sp: argparse.ArgumentParser, *, needs_out: bool = True) -> None:
    sp.add_argument("--setting", required=True, choices=SETTINGS, help="benchmark setting (params settings)")
    sp.add_argument("--stream", required=True, choices=STREAMS, help="input stream: joint coordinates or bones")
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


def _add_missing(sp: argparse.ArgumentParser) -> None:
    sp.add_argument(
        "--missing-list", help="NTU missing-skeleton list (default: params data.<dataset>_missing; none when null)"
    )


IMPORT_DESCRIPTION = """\
Import data that MS-G3D / 2s-AGCN or pyskl already processed, instead of the raw files: writes
the same interim parquet (and <out>.rejected.csv) that `stf preprocess` writes, so every later
stage runs unchanged (docs/method.md says which preparation steps are redone).

  --format msg3d --source DIR   DIR holds {train,val}_data_joint.npy (read memory-mapped) and
                                {train,val}_label.pkl (sample names, labels)
  --format pyskl --source FILE  a pyskl annotation pickle (split + annotations): NTU 3-D
                                (V=25, C=3) or OpenPose-18 2-D; COCO-17 files are refused

Pickles can run code when they are loaded. stf loads them with a restricted unpickler that
admits only numpy arrays, numpy scalars and dtypes, and builtin containers (list, dict, tuple,
set, str, numbers); a pickle that names anything else (os.system, a class of another package)
is refused with an error naming the file, before anything it names is called."""

PREDICT_DESCRIPTION = """\
Top-5 classes of raw NTU .skeleton or Kinetics clip .json files under a trained model, the files
prepared exactly as the training data (params preprocess, the active profile's frames). MODEL
is one model directory (model.pt) or an STF ensemble directory (e.g. models/<setting>/joint/stf:
its members' softmax probabilities are averaged); --bone-model adds the bone stream, fused as
`stf fuse` does (params fuse.bone_weight). A file whose skeleton layout does not fit the model
is a one-line error."""

EXPORT_DESCRIPTION = """\
Write the inference graph of a model (or an ensemble) as ONNX or TorchScript: input x
(N, C, T, V, M) float32 with a dynamic batch N, the prepared joint tensor (a bone-stream model
computes its bones inside), output logits (N, classes). The written file is run once on a random
batch and compared with torch. ONNX needs the export extra: pip install 'stf[export]'."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stf",
        description="To-a-T Spatio-Temporal Focus on MS-G3D: raw skeletons -> parquet -> models -> report.",
        formatter_class=_HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(
        name: str, fn: Callable[[argparse.Namespace], None], help_: str, description: str | None = None
    ) -> argparse.ArgumentParser:
        sp = sub.add_parser(
            name,
            help=help_,
            description=description or help_,
            formatter_class=_HelpFormatter if description is None else _RawHelpFormatter,
        )
        _add_common(sp)
        sp.set_defaults(func=fn)
        return sp

    sp = add("synth", cmd_synth, "write a synthetic dataset in the real raw formats")
    _add_dataset(sp)
    sp.add_argument("--out", required=True, help="output directory of raw files")

    sp = add("fetch", cmd_fetch, "verify and unpack the real archives named in params.yaml")
    _add_dataset(sp)
    sp.add_argument("--out", required=True, help="output directory of raw files")

    sp = add("raw", cmd_raw, "pipeline stage: synth or fetch, as the active profile's source says")
    _add_dataset(sp)
    sp.add_argument("--out", required=True, help="output directory of raw files")

    sp = add("preprocess", cmd_preprocess, "raw files -> one parquet per dataset (+ <out>.rejected.csv)")
    _add_dataset(sp)
    sp.add_argument("--raw", required=True, help="directory of raw files (searched recursively)")
    sp.add_argument("--out", required=True, help="output parquet file")
    _add_missing(sp)
    sp.add_argument("--strict", action="store_true", help="exit non-zero when any file is rejected")

    sp = add(
        "import",
        cmd_import,
        "MS-G3D or pyskl processed data -> the interim parquet (+ <out>.rejected.csv)",
        IMPORT_DESCRIPTION,
    )
    sp.add_argument("--format", required=True, choices=("msg3d", "pyskl"), help="what --source holds")
    sp.add_argument("--source", required=True, help="msg3d: the data folder; pyskl: the annotation .pkl")
    _add_dataset(sp)
    sp.add_argument("--out", required=True, help="output parquet file (data/interim/<dataset>.parquet)")
    sp.add_argument(
        "--splits-out",
        metavar="DIR",
        help="pyskl: also write DIR/<setting>.parquet from the pickle's split (xsub_*, xview_*, xset_*, train/val) "
        "and report where it disagrees with stf's id rules",
    )
    _add_missing(sp)
    sp.add_argument("--strict", action="store_true", help="exit non-zero when any sample is rejected")

    sp = add("split", cmd_split, "benchmark split and stratified training subsets of one setting")
    sp.add_argument("--setting", required=True, choices=SETTINGS, help="benchmark setting (params settings)")
    sp.add_argument("--data", required=True, help="preprocessed parquet")
    sp.add_argument("--out", required=True, help="output split parquet")

    sp = add("train", cmd_train, "train the MS-G3D baseline of one setting and stream")
    _add_train_io(sp)
    sp.add_argument("--fraction", type=int, default=100, help="percent of the training part")
    _add_seed(sp)
    _add_resume(sp)

    sp = add("finetune", cmd_finetune, "fine-tune one STF variant, or a cross-entropy control, from a baseline")
    _add_train_io(sp)
    _add_finetune_kind(sp)
    sp.add_argument(
        "--member", type=int, default=0, choices=(0, 1), help="with --control ft: 1 = the second model (msg3d-ft-b)"
    )
    sp.add_argument("--lr-from", help="selection.json of `stf select-lr` (default lr: params stf.lr)")
    sp.add_argument("--fraction", type=int, default=100, help="percent of the training part")
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

    sp = add("predict", cmd_predict, "top-5 classes of raw skeleton files under a trained model", PREDICT_DESCRIPTION)
    sp.add_argument("--model", required=True, help="model or STF ensemble directory (joint stream with --bone-model)")
    sp.add_argument("--bone-model", metavar="DIR", help="bone-stream model or ensemble directory to fuse with --model")
    sp.add_argument("--json", action="store_true", help="print one JSON list (file, top5) on stdout instead of text")
    sp.add_argument(
        "--focus",
        metavar="OUT.png",
        help="draw the focus map Q of the predicted class on the skeleton (several files: OUT-<file>.png each)",
    )
    sp.add_argument("files", nargs="+", metavar="FILE", help="raw NTU .skeleton or Kinetics clip .json file")

    sp = add("export", cmd_export, "a trained model as an ONNX or TorchScript inference graph", EXPORT_DESCRIPTION)
    sp.add_argument("--model", required=True, help="model or STF ensemble directory")
    sp.add_argument("--format", required=True, choices=("onnx", "torchscript"), help="file format")
    sp.add_argument(
        "--frames", type=int, metavar="T", help="frames T of the input (default: the active profile's frames)"
    )
    sp.add_argument("--out", required=True, help="output file (.onnx / .pt)")

    sp = add("flops", cmd_flops, "FLOPs and parameters of MS-G3D vs STF at full (paper) width, as JSON")
    _add_dataset(sp)
    sp.add_argument("--frames", type=int, default=300, help="frames T of the counted input")
    sp.add_argument("--persons", type=int, default=2, help="persons M of the counted input")
    sp.add_argument("--in-channels", type=int, default=3, help="input channels C (NTU: 3 = x, y, z; 4 with visibility)")
    sp.add_argument("--out", help="also write the JSON here")

    sp = add("report", cmd_report, "tables, figures and report.md from the model and result directories")
    sp.add_argument("--models", default="models", help="root of model directories")
    sp.add_argument("--results", default="results", help="root of fused results")
    sp.add_argument("--out", default="results", help="where tables, figures and report.md go")

    sp = add(
        "evidence-report", cmd_evidence_report, "one cell's controls, seeds and paired tests: report.md + summary.json"
    )
    sp.add_argument("--models", default="models", help="root of model directories")
    sp.add_argument("--split", required=True, help="split parquet of the setting (train/test sample counts)")
    sp.add_argument("--setting", default="ntu60-xsub", choices=SETTINGS, help="the evidence cell's setting")
    sp.add_argument("--stream", default="joint", choices=STREAMS, help="the evidence cell's stream")
    sp.add_argument("--out", default="results/evidence", help="where report.md, summary.json and figures go")

    sp = add("schema", cmd_schema, "print (or write) the JSON schema of params.yaml")
    sp.add_argument("--out", help="write here instead of stdout")

    sp = add(
        "dvc-yaml",
        cmd_dvc_yaml,
        "print (or write) dvc.yaml: the DVC stages of the pipeline description (stf.pipeline) for these params",
    )
    sp.add_argument("--out", help="write here instead of stdout (the repository's dvc.yaml: make dvc.yaml)")

    return parser


class _RawHelpFormatter(_HelpFormatter, argparse.RawDescriptionHelpFormatter):
    """`_HelpFormatter` that keeps a description's own line breaks."""


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
