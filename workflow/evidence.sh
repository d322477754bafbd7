#!/bin/sh
# `make evidence`: the evidence run (docs/pipeline.md). The pipeline's `evidence` target
# (results/main-cell: NTU-60 x-sub joint, baseline, STF and the three controls, every seed,
# paired tests) on the `evidence` profile, once per focus-distance norm, in its own folder so
# that the repository's tiny-profile outputs stay as they are:
#   runs/evidence/            the run (data, models, logs; Snakemake caches every job there)
#   results/evidence/         its results with stf.loss_norm = rms (the default)
#   results/evidence-frobenius/  the same with frobenius (the paper's literal norm)
# The second pass reruns only what reads stf.loss_norm (the STF fine-tunings, their ensemble,
# the evidence report); the baselines and the controls are reused. A later call reruns only what
# changed (params.yaml, code). Usage: workflow/evidence.sh [norm ...]   (default: rms frobenius)
set -eu
run=runs/evidence
mkdir -p "$run/src"
# the workflow and the sources that its jobs list as code inputs (mtimes kept: unchanged files
# do not make Snakemake rerun anything)
for f in Snakefile workflow src/stf; do
    rm -rf "${run:?}/$f"
    cp -Rp "$f" "$run/$f"
done
for norm in ${*:-rms frobenius}; do
    stf params-set --params params.yaml --set profile=evidence --set "stf.loss_norm=$norm" --out "$run/params.yaml"
    (cd "$run" && snakemake --workflow-profile workflow/profiles/default --cores "$(nproc)" results/main-cell)
    dest=results/evidence
    [ "$norm" = rms ] || dest="results/evidence-$norm"
    rm -rf "$dest.tmp"
    cp -R "$run/results/main-cell" "$dest.tmp"
    rm -f "$dest.tmp/.snakemake_timestamp"  # Snakemake's marker of the run folder's output
    rm -rf "$dest"
    mv "$dest.tmp" "$dest"
    echo "evidence: $dest (stf.loss_norm = $norm)"
done
