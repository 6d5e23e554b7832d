#!/usr/bin/env bash
# A round-seed chain of issue 11 (README of this folder, "Round-seed chains"): GCC's three
# rounds again from this folder's Stage I, with another seed for the rounds only. A round's
# seed is derived from base.seed and its stage name, so renaming the rounds r1, r2, r3 to
# sNr1, sNr2, sNr3 gives the rounds new seeds while Stage I, restored from checkpoints/, stays
# the run's own, bit for bit. Everything else is this folder's params.yaml (with
# gcc.select_round: heldout_stop, the default declared on 2026-12-04 before any chain ran).
#
#   bash round_seed_chain.sh TAG DEST [ROUND_DIR]
#     TAG        s1, s2, ...: the rounds' names become TAGr1, TAGr2, TAGr3
#     DEST       a new folder for the scratch project (the chain runs there)
#     ROUND_DIR  optional: a finished round's backbone.pt, cluster_head.pt and unet.pt (saved
#                from an earlier session) to continue the chain after it, e.g.
#                seed_s1/s1r2 continues with s1r3
#
# Then, alone on the machine: cd DEST && ./run.sh (or ./run.sh round@TAGr2 to stop earlier;
# a continued chain runs its next round only);
# score what has finished with benchmarks/score_rounds.py. The pipeline is copied from the
# checkout that holds this script: use a commit whose rounds' code is the one to measure.
# The script checks that the prepared data are the run's (their hash); it cannot check that
# this commit's Stage I code would write these checkpoints (`dvc commit -f` takes them as they
# are), so read `git diff` of the Stage I code since the run's commit (dvc.lock.partial).
set -euo pipefail
tag="$1" dest="$2" round_dir="${3:-}"
main="$(cd "$(dirname "$0")/../../.." && pwd)"
here="$main/benchmarks/fashion_mnist/issue11_cpu"
[ -e "$dest" ] && { echo "round_seed_chain: $dest exists; give a new folder" >&2; exit 2; }
python -m gccluster.scratch_project "$main" "$dest"
python - "$here/params.yaml" "$dest/params.yaml" "$tag" <<'PY'
import sys, yaml
source, out, tag = sys.argv[1:]
params = yaml.safe_load(open(source))
params["gcc"]["rounds"] = {f"{tag}r1": {"init": "pseudolabel"}, f"{tag}r2": {"init": f"{tag}r1"},
                           f"{tag}r3": {"init": f"{tag}r2"}}
params["gcc"]["final_round"] = f"{tag}r3"
params["gcc"]["select_round"] = "heldout_stop"
yaml.safe_dump(params, open(out, "w"), sort_keys=False)
PY
cd "$dest"
export CI=true PYTHONPATH="$dest/src"
git init -q
git add -A && git -c user.name=chain -c user.email=chain@gccluster.invalid commit -qm "round-seed chain $tag"
dvc repro -q data
mkdir -p results/pretrain results/pseudolabel results/diffusion
cp "$here"/checkpoints/{backbone,projector}.pt results/pretrain/
cp "$here"/checkpoints/{cluster_head.pt,kmeans.npz} results/pseudolabel/
cp "$here"/checkpoints/unet.pt results/diffusion/
cp "$here/pretrain_loss.csv" results/pretrain/loss.csv
cp "$here/head_loss.csv" results/pseudolabel/loss.csv
cp "$here/diffusion_loss.csv" results/diffusion/loss.csv
# The checkpoints are the run's Stage I: the prepared data must be the run's too.
grep -q "md5: 0f0a220e5cc3866ed6c01f7dac4615bc.dir" dvc.lock || {
  echo "round_seed_chain: the prepared Fashion-MNIST differs from the run's (data/prepared hash)" >&2; exit 1; }
dvc commit -q -f pretrain pseudolabel diffusion
next="${tag}r1"
if [ -n "$round_dir" ]; then
  done_round="$(basename "$round_dir")"
  mkdir -p "results/$done_round"
  cp "$round_dir"/{backbone,cluster_head,unet}.pt "results/$done_round/"
  next="${tag}r$(( ${done_round##*r} + 1 ))"
fi
last="${tag}r3"; [ -n "$round_dir" ] && last="$next"
git add -A && git -c user.name=chain -c user.email=chain@gccluster.invalid commit -qm "Stage I restored${round_dir:+, $done_round restored}"
cat > run.sh <<EOF
#!/usr/bin/env bash
# Runs the chain from $next to ${tag}r3 (or to the stage given) with dvc repro; times in
# run.times, time.log. A continued chain runs one round per call (--single-item: the rounds
# before it are restored checkpoints, not DVC outputs).
# The environment (python, dvc) is the one that built the project.
cd "$dest" && export CI=true PYTHONPATH="$dest/src" PATH="$(dirname "$(command -v python)"):\$PATH"
target="\${1:-round@$last}"
date -u +"start %F %T \$target" >> run.times
/usr/bin/time -v -o time.log dvc repro ${round_dir:+--single-item }"\$target" >> repro.log 2>&1
echo "rc=\$?" >> run.times; date -u +"end %F %T" >> run.times
EOF
chmod +x run.sh
echo "round_seed_chain: $dest ready; next round $next (cd $dest && ./run.sh)"
