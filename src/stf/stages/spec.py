"""The `ModelSpec` of a dataset under the params: `spec_for(params, dataset, num_class, in_channels,
stf=False, full_width=False)`.

The stages (train, fine-tuning, flops) build their networks from it; `stf.models` itself takes
only a `ModelSpec` and knows nothing of the params. The params keys it reads are
`stf.pipeline.SPEC_KEYS` (and `STF_SPEC_KEYS` with `stf`).
"""

from __future__ import annotations

from stf.config import Params
from stf.data.skeletons import layout_for
from stf.models.msg3d import NUM_CLASSES, ModelSpec, ModelSpecError
from stf.models.stf import STFSpec


def skeleton_family(dataset: str) -> str:
    """ "ntu" for ntu60/ntu120, "kinetics" for kinetics (keys of params.model scales)."""
    if dataset in ("ntu60", "ntu120"):
        return "ntu"
    if dataset == "kinetics":
        return "kinetics"
    raise ModelSpecError(f"unknown dataset {dataset!r}; expected one of {sorted(NUM_CLASSES)}")


def spec_for(
    params: Params,
    dataset: str,
    num_class: int,
    in_channels: int,
    stf: bool = False,
    full_width: bool = False,
) -> ModelSpec:
    """The `ModelSpec` of `dataset` under `params` (a `stf.config.Params`).

    Scales from params.model per skeleton family, widths from the active profile (or the
    paper's 96/192/384 when `full_width`), M from params.preprocess.persons, the STF sizes
    from params.stf when `stf`.
    """
    family = skeleton_family(dataset)
    layout = layout_for(dataset)
    stf_spec = None
    if stf:
        stf_spec = STFSpec(
            graph_scales=params.stf.graph_scales,
            beta_hidden=params.stf.beta_hidden,
            alpha_hidden=params.stf.alpha_hidden,
            time_bins=params.stf.alpha_time_bins,
        )
    return ModelSpec(
        num_class=num_class,
        num_point=layout.num_joints,
        num_person=params.preprocess.persons,
        in_channels=in_channels,
        edges=tuple(tuple(e) for e in layout.edges),
        widths=(96, 192, 384) if full_width else tuple(params.sizes.widths),
        gcn_scales=params.model.gcn_scales[family],
        g3d_scales=params.model.g3d_scales[family],
        window_sizes=tuple(params.model.window_sizes),
        window_dilations=tuple(params.model.window_dilations),
        stf=stf_spec,
    )
