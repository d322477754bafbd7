# FLOPs of the two networks at the paper's size, then every table, figure and results/report.md.


rule flops:
    """Parameters and FLOPs of MS-G3D and STF at full width, NTU input (T = 300, M = 2, C = 4)."""
    input:
        code=code("stf.stages.flops"),
    output:
        flops="results/flops.json",
    log:
        "logs/flops.log",
    params:
        tracked=tracked("model", *STF_SPEC_KEYS),
    conda:
        "../envs/stf.yaml"
    shell:
        "stf flops --params params.yaml --dataset ntu60 --frames 300 --persons 2 --in-channels 4"
        " --out {output.flops} 2> {log}"


rule report:
    """Tables 2-5, the shift test and FLOPs beside the paper's numbers, figures, report.md."""
    input:
        unpack(report_inputs),
    output:
        report="results/report.md",
        table2="results/table2.csv",
        table2_top5="results/table2_top5.csv",
        table3="results/table3.csv",
        table4="results/table4.csv",
        table5="results/table5.csv",
        shift="results/shift.csv",
        flops="results/flops.csv",
        metrics="results/metrics.json",
        per_class="results/plots/per_class.csv",
        fractions="results/plots/fractions.csv",
        figures=directory("results/figures"),
    log:
        "logs/report.log",
    params:
        tracked=tracked(
            "profile",
            "profiles.{profile}.source",
            "settings",
            "split.fractions",
            "stf.ensemble",
            "stf.variants",
            "report",
        ),
    conda:
        "../envs/stf.yaml"
    shell:
        "stf report --params params.yaml --models models --results results --out results 2> {log}"
