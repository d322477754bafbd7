#!/bin/sh
# Bring Snakemake's and DVC's records of the pipeline in line, whichever of the two ran last
# (`make sync`; docs/pipeline.md). Afterwards `snakemake -n <target>` and `dvc status` both
# have nothing to do. Usage: workflow/sync.sh [target]   (default results/report.md)
set -eu
target=${1:-results/report.md}
if snakemake -n "$target" 2>&1 | grep -q "Nothing to be done"; then
    # Snakemake ran last: store its outputs' hashes in dvc.lock. --no-relink leaves the files
    # as they are (a relink from DVC's cache rewrites them, and Snakemake then sees newer inputs).
    dvc commit -f -q --no-relink
    echo "sync: Snakemake ran last; its outputs are recorded in dvc.lock"
elif dvc status -q; then
    # DVC ran last (dvc repro, dvc exp run): refresh Snakemake's records (params, code, inputs
    # and mtimes) without running a job. The .snakemake_timestamp files this writes into
    # directory outputs are in .dvcignore, so DVC's hashes do not change.
    snakemake "$target" --touch --forceall --cores 1 --quiet  # target first: --quiet takes values
    echo "sync: DVC ran last; Snakemake's records are refreshed"
else
    echo "sync: both Snakemake and DVC have jobs to run for $target, so neither finished;" \
        "run one of them first (make run, or dvc repro)" >&2
    exit 1
fi
