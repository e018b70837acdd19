#!/usr/bin/env bash
# Every benchmark, one after the other: bash benchmarks/run_all.sh TEMPLATES_DIR
set -euo pipefail
templates="${1:?usage: run_all.sh TEMPLATES_DIR}"
cd "$(dirname "$0")/.."
python benchmarks/bench_source_kernel.py --templates-dir "$templates"
python benchmarks/bench_hrf_convolution.py
python benchmarks/bench_memory.py --templates-dir "$templates"
python benchmarks/bench_training.py --templates-dir "$templates"
python benchmarks/evaluate_simulation.py --templates-dir "$templates"
python benchmarks/learning_curve.py --templates-dir "$templates"
python benchmarks/evaluate_runs.py --templates-dir "$templates"
