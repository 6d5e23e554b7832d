#!/usr/bin/env bash
# One timed session on a GPU machine, in the repository root, in this order:
#  1. the project's missing dependencies from wheels in .whl/ (if that folder exists; a GPU
#     machine without a registry gets them this way, see README "GPU throughput");
#  2. benchmarks/gpu_throughput.py on this checkout (-> $OUT/throughput_after.json) and, if
#     .old/src holds an older checkout's src/, on that one (-> $OUT/throughput_before.json);
#  3. the `fashion_mnist` preset end to end with `dvc repro`, every output line stamped with
#     the time (-> $OUT/repro.log), data from $FASHION_DIR, then the small results in
#     $OUT/fashion_results.tgz.
# Every part has a time limit inside BUDGET_S (seconds), so a slow part costs the later ones
# time but never their numbers.
#
#   OUT=out BUDGET_S=560 FASHION_DIR=.devdata/fashion-mnist bash benchmarks/gpu_session.sh
#
# THROUGHPUT=0 skips part 2; E2E_OVERRIDES="pretrain.epochs=1 ..." changes the preset (for a
# dry run on a CPU; numbers from such a run are no preset's).
set -uo pipefail
start=$(date +%s)
budget=${BUDGET_S:-560}
OUT=${OUT:-gpu_out}
mkdir -p "$OUT"
left() { echo $((budget - ($(date +%s) - start))); }
stamp() { while IFS= read -r line; do echo "$(date +%s) $line"; done; }

if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl \
    || { echo "wheel install failed"; exit 1; }
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
# dvc.yaml runs `python stages/...`; some images only have python3 (a wrapper, not a link:
# a link to a virtual environment's python3 would leave that environment).
mkdir -p /tmp/gcc-bin && rm -f /tmp/gcc-bin/python && printf '#!/bin/sh\nexec python3 "$@"\n' > /tmp/gcc-bin/python && chmod +x /tmp/gcc-bin/python
export PATH=/tmp/gcc-bin:$PATH CI=true PYTHONUNBUFFERED=1
base_path=${PYTHONPATH:-}
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null; lscpu | grep "Model name";
  python3 -c "import torch; print('torch', torch.__version__)"; } | tee "$OUT/machine.txt"

if [ "${THROUGHPUT:-1}" = 1 ]; then
  PYTHONPATH=src${base_path:+:$base_path} timeout $(( $(left) * 35 / 100 )) \
    python3 benchmarks/gpu_throughput.py --out "$OUT/throughput_after.json" --label after 2>&1 | grep -v "it/s\]" | tail -30
  if [ -d .old/src ]; then
    PYTHONPATH=.old/src${base_path:+:$base_path} timeout $(( $(left) * 20 / 100 )) \
      python3 benchmarks/gpu_throughput.py --out "$OUT/throughput_before.json" --label before \
      --precisions bf16 --kinds simclr,ddpm,ddim,gcc 2>&1 | grep -v "it/s\]" | tail -14
  fi
fi

echo "e2e starts with $(left) s left"
python3 - "${FASHION_DIR:-}" ${E2E_OVERRIDES:-} <<'PY'
import sys
import yaml
sys.path.insert(0, "src")
from gccluster.presets import write_preset
write_preset("fashion_mnist", "params.yaml")
params = yaml.safe_load(open("params.yaml"))
if sys.argv[1]:
    params["data"]["local_dir"] = sys.argv[1]
for item in sys.argv[2:]:
    key, value = item.split("=", 1)
    *parents, leaf = key.split(".")
    node = params
    for name in parents:
        node = node[name]
    node[leaf] = yaml.safe_load(value)
yaml.safe_dump(params, open("params.yaml", "w"), sort_keys=False)
PY
cp params.yaml "$OUT/params.yaml"
python3 -m dvc config --local core.no_scm true
repro_s=$(( $(left) - 25 )); [ "$repro_s" -ge 1 ] || repro_s=1  # timeout 0 would mean no limit
PYTHONPATH=src${base_path:+:$base_path} timeout "$repro_s" python3 -m dvc repro 2>&1 | stamp > "$OUT/repro.log"
echo "dvc repro exit ${PIPESTATUS[0]}, $(left) s left"
grep -E "Running stage|ERROR|Error|stopped" "$OUT/repro.log" | tail -20
find results -type f -size -4M \( -name "*.json" -o -name "*.csv" -o -name "*.md" -o -name "*.png" -o -name "*.pt" -o -name "*.npz" \) \
  | tar czf "$OUT/fashion_results.tgz" -T - dvc.lock 2>/dev/null
ls -la "$OUT"
