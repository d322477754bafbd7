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
        unpack(job_inputs("train")),
    output:
        **PIPELINE.outputs("train", directory),
    log:
        PIPELINE.log("train"),
    params:
        cmd=job_command("train"),
        tracked=job_params("train"),
    wildcard_constraints:
        **PIPELINE.wildcard_constraints("train"),
    threads: THREADS
    resources:
        gpu=1,
        mem_mb=32000,
        runtime=2880,
    conda:
        "../envs/stf.yaml"
    shell:
        "{params.cmd} 2> {log}"


# One rule per STF variant (finetune_dcg, finetune_e, finetune_m2, ...), because each reads its
# own loss weights: after a change of stf.lambdas.e only finetune_e (and what uses its models)
# reruns.
for stage in PIPELINE.family("finetune"):

    rule:
        name:
            stage
        input:
            unpack(job_inputs(stage)),
        output:
            **PIPELINE.outputs(stage, directory),
        log:
            PIPELINE.log(stage),
        params:
            cmd=job_command(stage),
            tracked=job_params(stage),
        wildcard_constraints:
            **PIPELINE.wildcard_constraints(stage),
        threads: THREADS
        resources:
            gpu=1,
            mem_mb=32000,
            runtime=720,
        conda:
            "../envs/stf.yaml"
        shell:
            "{params.cmd} 2> {log}"


rule probe_msg3d:
    """Linear probe of the frozen NTU-60 x-sub joint MS-G3D on NTU-120 x-sub (the shift test)."""
    input:
        unpack(job_inputs("probe_msg3d")),
    output:
        **PIPELINE.outputs("probe_msg3d", directory),
    log:
        PIPELINE.log("probe_msg3d"),
    params:
        cmd=job_command("probe_msg3d"),
        tracked=job_params("probe_msg3d"),
    threads: THREADS
    resources:
        gpu=1,
        mem_mb=32000,
        runtime=240,
    conda:
        "../envs/stf.yaml"
    shell:
        "{params.cmd} 2> {log}"


use rule probe_msg3d as probe_stf with:
    """The same probe of the frozen STF ensemble (params stf.ensemble)."""
    input:
        unpack(job_inputs("probe_stf")),
    output:
        **PIPELINE.outputs("probe_stf", directory),
    log:
        PIPELINE.log("probe_stf"),
    params:
        cmd=job_command("probe_stf"),
        tracked=job_params("probe_stf"),
