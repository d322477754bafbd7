# MS-G3D baselines, STF fine-tuning (one rule per variant of params stf.variants), and the
# NTU-60 -> NTU-120 linear probe. Resume state lives in `<out>.work/`, outside the outputs.
#
# On a GPU node a rule's command can run under torchrun (DDP, one process per GPU), e.g.
#   torchrun --standalone --nproc-per-node 4 -m stf train --params params.yaml \
#     --setting ntu60-xsub --stream joint --data data/interim/ntu60.parquet \
#     --split data/splits/ntu60-xsub.parquet --fraction 100 \
#     --out models/ntu60-xsub/joint/msg3d --resume
# (docs/pipeline.md); Snakemake itself runs the plain `stf` command, one GPU per job.


rule train:
    """Train the MS-G3D baseline of one model id (a setting/stream, or a Table 4 subset)."""
    input:
        unpack(model_data),
        code=code("stf.stages.train"),
    output:
        model=directory("models/{model}/msg3d"),
    log:
        "logs/train/{model}.log",
    params:
        setting=model_field("setting"),
        stream=model_field("stream"),
        fraction=model_field("fraction"),
        tracked=tracked(
            "settings.{setting}",
            *SPEC_KEYS,
            *RECIPE_KEYS,
            "train.lr.{dataset}",
            "profiles.{profile}.epochs.{dataset}",
            "profiles.{profile}.lr_steps.{dataset}",
        ),
    threads: THREADS
    resources:
        gpu=1,
        mem_mb=32000,
        runtime=2880,
    conda:
        "../envs/stf.yaml"
    shell:
        "stf train --params params.yaml --setting {params.setting} --stream {params.stream}"
        " --data {input.data} --split {input.split} --fraction {params.fraction}"
        " --out {output.model} --resume 2> {log}"


# One rule per STF variant, because each reads its own loss weights: after a change of
# stf.lambdas.e only finetune_e (and what uses its models) reruns.
for variant, losses in config["stf"]["variants"].items():

    rule:
        name:
            f"finetune_{variant}"
        input:
            unpack(model_data),
            init="models/{model}/msg3d",
            code=code("stf.stages.train"),
        output:
            model=directory(f"models/{{model}}/stf-{variant}"),
        log:
            f"logs/finetune_{variant}/{{model}}.log",
        params:
            variant=variant,
            setting=model_field("setting"),
            stream=model_field("stream"),
            fraction=model_field("fraction"),
            tracked=tracked(
                "settings.{setting}",
                *SPEC_KEYS,
                *STF_SPEC_KEYS,
                *RECIPE_KEYS,
                "stf.lr",
                "stf.focus_layer",
                "stf.loss_norm",
                "profiles.{profile}.finetune_epochs",
                f"stf.variants.{variant}",
                *(f"stf.lambdas.{loss}" for loss in losses),
            ),
        threads: THREADS
        resources:
            gpu=1,
            mem_mb=32000,
            runtime=720,
        conda:
            "../envs/stf.yaml"
        shell:
            "stf finetune --params params.yaml --setting {params.setting} --stream {params.stream}"
            " --data {input.data} --split {input.split} --variant {params.variant}"
            " --init {input.init} --fraction {params.fraction} --out {output.model} --resume 2> {log}"


PROBE_KEYS = [
    f"settings.{SHIFT_SETTING}",
    *RECIPE_KEYS,
    "stf.probe_lr",
    "profiles.{profile}.probe_epochs",
]


rule probe_msg3d:
    """Linear probe of the frozen NTU-60 x-sub joint MS-G3D on NTU-120 x-sub (the shift test)."""
    input:
        data=interim(config["settings"][SHIFT_SETTING]["dataset"]),
        split=split_of(SHIFT_SETTING),
        models=[f"models/{MAIN}/msg3d"],
        code=code("stf.stages.train"),
    output:
        model=directory("models/shift/msg3d"),
    log:
        "logs/probe_msg3d.log",
    params:
        setting=SHIFT_SETTING,
        models=lambda wc, input: " ".join(f"--model {m}" for m in input.models),
        tracked=tracked(*PROBE_KEYS),
    threads: THREADS
    resources:
        gpu=1,
        mem_mb=32000,
        runtime=240,
    conda:
        "../envs/stf.yaml"
    shell:
        "stf probe --params params.yaml --setting {params.setting} --stream joint"
        " --data {input.data} --split {input.split} {params.models} --out {output.model} --resume 2> {log}"


use rule probe_msg3d as probe_stf with:
    input:
        data=interim(config["settings"][SHIFT_SETTING]["dataset"]),
        split=split_of(SHIFT_SETTING),
        models=[f"models/{MAIN}/stf-{v}" for v in ENSEMBLE],
        code=code("stf.stages.train"),
    output:
        model=directory("models/shift/stf"),
    log:
        "logs/probe_stf.log",
