"""Where every model, ensemble, fusion and probe of a run lives: one naming rule for the
pipeline description, the CLI and the report.

    models/{setting}/{stream}[/p{fraction}][/s{seed}]/{name}/   a model or an ensemble
    results/{setting}[/s{seed}]/{name}/                         J+B fusion of `name`
    models/shift[/s{seed}]/{name}/                              NTU-60 -> NTU-120 linear probe

Fraction 100 and seed 0 add no level, so a one-seed run keeps the paths of earlier versions.
`name` is one of

    msg3d         MS-G3D baseline (`stf train`)
    stf-{variant} one STF fine-tuning (`stf finetune --variant`), e.g. stf-dcg, stf-e, stf-m2
    stf           STF: the softmax average of the params stf.ensemble models (`stf evaluate`)
    msg3d-ft      control MS-G3D+ft: the baseline fine-tuned with cross-entropy alone, no STF
                  modules, STF's fine-tuning recipe (`stf finetune --control ft`)
    msg3d-ft-b    the second MS-G3D+ft (`--control ft --member 1`: another shuffle seed)
    msg3d-ft-x2   control MS-G3D+ft x2: the softmax average of msg3d-ft and msg3d-ft-b
    stf-ce        control STF+ce: STF modules added, every λ = 0 (`stf finetune --control stf-ce`)
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

BASELINE = "msg3d"
ENSEMBLE = "stf"
FT = "msg3d-ft"
FT_B = "msg3d-ft-b"
FT_X2 = "msg3d-ft-x2"
STF_CE = "stf-ce"

Control = Literal["ft", "stf-ce"]
CONTROL_KINDS: tuple[str, ...] = ("ft", "stf-ce")

# report row label of each directory name that is a row of Table 2 (paper rows, then controls)
ROWS: dict[str, str] = {
    BASELINE: "MS-G3D",
    ENSEMBLE: "STF",
    FT: "MS-G3D+ft",
    STF_CE: "STF+ce",
    FT_X2: "MS-G3D+ft x2",
}
PAPER_ROWS: tuple[str, ...] = (BASELINE, ENSEMBLE)
CONTROL_ROWS: tuple[str, ...] = (FT, STF_CE, FT_X2)
# members averaged into each ensemble row (besides STF's, which params stf.ensemble names)
FT_X2_MEMBERS: tuple[str, ...] = (FT, FT_B)


def variant_name(variant: str) -> str:
    """Directory name of one STF fine-tuning: `dcg` -> `stf-dcg`."""
    return f"stf-{variant}"


def control_name(control: str, member: int = 0) -> str:
    """Directory name of a control fine-tuning: ("ft", 0) -> msg3d-ft, ("ft", 1) -> msg3d-ft-b,
    ("stf-ce", 0) -> stf-ce."""
    if control == "ft":
        if member not in (0, 1):
            raise ValueError(f"MS-G3D+ft has members 0 and 1 (msg3d-ft, msg3d-ft-b), got {member}")
        return FT if member == 0 else FT_B
    if control == "stf-ce":
        if member != 0:
            raise ValueError(f"STF+ce has one member, got member {member}")
        return STF_CE
    raise ValueError(f"unknown control {control!r}; known: {list(CONTROL_KINDS)}")


def _levels(fraction: int = 100, seed: int = 0) -> list[str]:
    if not 0 < fraction <= 100:
        raise ValueError(f"fraction must be a percentage in (0, 100], got {fraction}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    return ([f"p{fraction}"] if fraction != 100 else []) + ([f"s{seed}"] if seed != 0 else [])


def model_id(setting: str, stream: str, fraction: int = 100, seed: int = 0) -> str:
    """`ntu60-xsub/joint`, `ntu60-xsub/joint/p10`, `ntu60-xsub/joint/s1`, `.../p10/s1`."""
    return "/".join([setting, stream, *_levels(fraction, seed)])


def model_dir(root: Path | str, setting: str, stream: str, name: str, seed: int = 0, fraction: int = 100) -> Path:
    """`<root>/{setting}/{stream}[/p{fraction}][/s{seed}]/{name}` (root: usually `models`)."""
    return Path(root, model_id(setting, stream, fraction, seed), name)


def fused_dir(root: Path | str, setting: str, name: str, seed: int = 0) -> Path:
    """`<root>/{setting}[/s{seed}]/{name}` (root: usually `results`): J+B fusion of `name`."""
    return Path(root, setting, *_levels(seed=seed), name)


def shift_dir(root: Path | str, name: str, seed: int = 0) -> Path:
    """`<root>/shift[/s{seed}]/{name}` (root: usually `models`): the linear probe of `name`."""
    return Path(root, "shift", *_levels(seed=seed), name)
