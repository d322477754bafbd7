# Test scores of the STF ensembles, and joint+bone fusion of every method.


rule evaluate:
    """Softmax-average the ensemble's STF models (params stf.ensemble) on the test part."""
    input:
        unpack(model_data),
        models=lambda wc: [f"models/{wc.model}/stf-{v}" for v in ENSEMBLE],
        code=code("stf.stages.evaluate"),
    output:
        model=directory("models/{model}/stf"),
    log:
        "logs/evaluate/{model}.log",
    params:
        setting=model_field("setting"),
        stream=model_field("stream"),
        models=lambda wc, input: " ".join(f"--model {m}" for m in input.models),
        tracked=tracked(
            "settings.{setting}",
            "train.device",
            "train.amp",
            "profiles.{profile}.eval_batch_size",
            "profiles.{profile}.threads",
        ),
    threads: THREADS
    resources:
        gpu=1,
        mem_mb=16000,
        runtime=60,
    conda:
        "../envs/stf.yaml"
    shell:
        "stf evaluate --params params.yaml --setting {params.setting} --stream {params.stream}"
        " --data {input.data} --split {input.split} {params.models} --out {output.model} 2> {log}"


rule fuse:
    """J+B: the weighted mean of the joint and bone softmax probabilities of one method."""
    input:
        joint="models/{setting}/joint/{method}",
        bone="models/{setting}/bone/{method}",
        code=code("stf.stages.fuse"),
    output:
        fused=directory("results/{setting}/{method}"),
    log:
        "logs/fuse/{setting}/{method}.log",
    params:
        tracked=tracked("fuse"),
    conda:
        "../envs/stf.yaml"
    shell:
        "stf fuse --params params.yaml --joint {input.joint} --bone {input.bone} --out {output.fused} 2> {log}"
