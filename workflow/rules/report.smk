# FLOPs of the two networks at the paper's size, then every table, figure and results/report.md.


rule flops:
    """Parameters and FLOPs of MS-G3D and STF at full width, NTU input (T = 300, M = 2, C = 4)."""
    input:
        unpack(job_inputs("flops")),
    output:
        **PIPELINE.outputs("flops", directory),
    log:
        PIPELINE.log("flops"),
    params:
        cmd=job_command("flops"),
        tracked=job_params("flops"),
    conda:
        "../envs/stf.yaml"
    shell:
        "{params.cmd} 2> {log}"


rule report:
    """Tables 2-5, the shift test and FLOPs beside the paper's numbers, figures, report.md and
    the headline metrics (one file per Table 2 cell, for `dvc metrics show`)."""
    input:
        unpack(job_inputs("report")),
    output:
        **PIPELINE.outputs("report", directory),
    log:
        PIPELINE.log("report"),
    params:
        cmd=job_command("report"),
        tracked=job_params("report"),
    conda:
        "../envs/stf.yaml"
    shell:
        "{params.cmd} 2> {log}"
