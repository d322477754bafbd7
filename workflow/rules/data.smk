# Raw skeleton files -> one parquet per dataset -> one split file per benchmark setting.


rule raw:
    """Write the dataset's raw files: synthetic ones, or the real archives unpacked, as the
    profile's `source` says."""
    input:
        code=code("stf.data.synth.synthesize", "stf.data.fetch"),
    output:
        raw=directory("data/raw/{dataset}"),
    log:
        "logs/raw/{dataset}.log",
    params:
        tracked=tracked(
            "synth",
            "data.{dataset}",
            "profiles.{profile}.source",
            "profiles.{profile}.synth",
        ),
    conda:
        "../envs/stf.yaml"
    shell:
        "stf raw --params params.yaml --dataset {wildcards.dataset} --out {output.raw} 2> {log}"


rule preprocess:
    """Normalise, pad and pack every raw sample into one parquet (+ the rejected-files list)."""
    input:
        raw="data/raw/{dataset}",
        code=code("stf.data.preprocess"),
    output:
        data="data/interim/{dataset}.parquet",
        rejected="data/interim/{dataset}.rejected.csv",
    log:
        "logs/preprocess/{dataset}.log",
    params:
        tracked=tracked(
            "preprocess",
            "profiles.{profile}.frames",
            "data.ntu60_missing",
            "data.ntu120_missing",
        ),
    conda:
        "../envs/stf.yaml"
    shell:
        "stf preprocess --params params.yaml --dataset {wildcards.dataset} --raw {input.raw}"
        " --out {output.data} 2> {log}"


rule split:
    """Train/test split of one benchmark setting, with the stratified training subsets."""
    input:
        data=lambda wc: interim(job_fields(wc)["dataset"]),
        code=code("stf.data.splits"),
    output:
        split="data/splits/{setting}.parquet",
    log:
        "logs/split/{setting}.log",
    params:
        tracked=tracked("split", "settings.{setting}"),
    conda:
        "../envs/stf.yaml"
    shell:
        "stf split --params params.yaml --setting {wildcards.setting} --data {input.data}"
        " --out {output.split} 2> {log}"
