#!/usr/bin/env bash
# Ablations at the current digits default: GATCluster without the attention module (Table 2),
# DRC without L_CR (Table 3), seeds 0-2 each, one at a time, alone.
cd /work/ablate && source /work/main/.venv/bin/activate && export CI=true PYTHONPATH=$PWD/src
date -u +"start %F %T" >> runs.times
for n in 0 1 2; do
  /usr/bin/time -v -o time_gat_am_off_s$n.log dvc exp run -n gat-amoff-s$n -S base.seed=$n -S baselines.gatcluster.am=false baseline@gatcluster >> runs.log 2>&1
  echo "gat am_off s$n rc=$? $(date -u +%T)" >> runs.times
  mkdir -p out/gat_am_off_s$n && cp results/baselines/gatcluster/{metrics.json,loss.csv} out/gat_am_off_s$n/
done
for n in 0 1 2; do
  /usr/bin/time -v -o time_drc_cr0_s$n.log dvc exp run -n drc-cr0-s$n -S base.seed=$n -S baselines.drc.cr_weight=0 baseline@drc >> runs.log 2>&1
  echo "drc cr0 s$n rc=$? $(date -u +%T)" >> runs.times
  mkdir -p out/drc_cr0_s$n && cp results/baselines/drc/{metrics.json,loss.csv} out/drc_cr0_s$n/
done
echo done >> runs.times
