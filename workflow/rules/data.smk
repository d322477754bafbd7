# Raw skeleton files -> one parquet per dataset -> one split file per benchmark setting.


rule raw:
    """Write the dataset's raw files: synthetic ones, or the real archives unpacked, as the
    profile's `source` says."""
    input:
        unpack(job_inputs("raw")),
    output:
        **PIPELINE.outputs("raw", directory),
    log:
        PIPELINE.log("raw"),
    params:
        cmd=job_command("raw"),
        tracked=job_params("raw"),
    wildcard_constraints:
        **PIPELINE.wildcard_constraints("raw"),
    conda:
        "../envs/stf.yaml"
    shell:
        "{params.cmd} 2> {log}"


rule preprocess:
    """Normalise, pad and pack every raw sample into one parquet (+ the rejected-files list)."""
    input:
        unpack(job_inputs("preprocess")),
    output:
        **PIPELINE.outputs("preprocess", directory),
    log:
        PIPELINE.log("preprocess"),
    params:
        cmd=job_command("preprocess"),
        tracked=job_params("preprocess"),
    wildcard_constraints:
        **PIPELINE.wildcard_constraints("preprocess"),
    conda:
        "../envs/stf.yaml"
    shell:
        "{params.cmd} 2> {log}"


rule split:
    """Train/test split of one benchmark setting, with the stratified training subsets."""
    input:
        unpack(job_inputs("split")),
    output:
        **PIPELINE.outputs("split", directory),
    log:
        PIPELINE.log("split"),
    params:
        cmd=job_command("split"),
        tracked=job_params("split"),
    wildcard_constraints:
        **PIPELINE.wildcard_constraints("split"),
    conda:
        "../envs/stf.yaml"
    shell:
        "{params.cmd} 2> {log}"
