# Test scores of the STF ensembles, and joint+bone fusion of every method.


rule evaluate:
    """Softmax-average the ensemble's STF models (params stf.ensemble) on the test part."""
    input:
        unpack(job_inputs("evaluate")),
    output:
        **PIPELINE.outputs("evaluate", directory),
    log:
        PIPELINE.log("evaluate"),
    params:
        cmd=job_command("evaluate"),
        tracked=job_params("evaluate"),
    wildcard_constraints:
        **PIPELINE.wildcard_constraints("evaluate"),
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
