# Test scores of the ensembles (STF, MS-G3D+ft x2), and joint+bone fusion of every row and seed.


# evaluate: STF, the softmax average of the params stf.ensemble models; evaluate_ft_x2: the
# MS-G3D+ft x2 control, the same average of the two MS-G3D+ft models.
for stage in PIPELINE.family("evaluate"):

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
            mem_mb=16000,
            runtime=60,
        conda:
            "../envs/stf.yaml"
        shell:
            "{params.cmd} 2> {log}"


rule fuse:
    """J+B: the weighted mean of the joint and bone softmax probabilities of one method."""
    input:
        unpack(job_inputs("fuse")),
    output:
        **PIPELINE.outputs("fuse", directory),
    log:
        PIPELINE.log("fuse"),
    params:
        cmd=job_command("fuse"),
        tracked=job_params("fuse"),
    wildcard_constraints:
        **PIPELINE.wildcard_constraints("fuse"),
    conda:
        "../envs/stf.yaml"
    shell:
        "{params.cmd} 2> {log}"
