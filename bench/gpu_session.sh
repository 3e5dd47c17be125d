#!/usr/bin/env bash
# The GPU session's one command (bench/README.md, "gpu_check.py"), run by the device tool in the repository root with
# the wheels in .whl carried along: installs them beside the device's torch, then runs the check; the report
# (gpu_check.json) and the log (gpu_check.log) go to $OUT. Arguments are passed on to the check, e.g.
# `bash bench/gpu_session.sh --parts 2,4 --budget generate=200` for a rerun of two parts.
set -o pipefail
cd "$(dirname "$0")/.." || exit 1
if [ -d .whl ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        || exit 1
    export PYTHONPATH="/tmp/site:$PWD"
else
    export PYTHONPATH="$PWD"
fi
export PYTHONUNBUFFERED=1
OUT="${OUT:-.}"
nvidia-smi -L
python3 bench/gpu_check.py --device cuda --size 7b --json "$OUT/gpu_check.json" --workdir /tmp/gpu_check "$@" 2>&1 \
    | tee "$OUT/gpu_check.log"
