#!/usr/bin/env bash
# Fuzzes the parsers that read untrusted bytes, with cargo-fuzz (libFuzzer):
#   weights  safetensors bytes -> WeightsFile::from_bytes -> metadata -> arch::detect
#            -> build_graph -> infer_shapes -> MemoryPlan
#   npy      .npy bytes -> npy::from_bytes (+ a write/read round trip)
#   config   config.json text -> SourceConfig::parse -> arch::detect_with (transformers fixture)
#            -> default_preprocess + class names; the same text as preprocessor_config.json
#   tune_cache  tune.json bytes -> TuneCache -> every entry through ConvConfig::check, and
#            what passes through the plan's arithmetic (+ a save/load round trip)
# Seeds come from tests/fixtures (and the embedded default model); the corpora grow under
# fuzz/corpus/ and crashes land in fuzz/artifacts/ (both ignored by git). Not part of CI.
#
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]   (default: 60 s, every target)
# Needs: cargo install cargo-fuzz
#
# cargo-fuzz passes nightly-only flags (-Zsanitizer=..., -Cpasses=sancov); on the stable
# toolchain RUSTC_BOOTSTRAP=1 makes rustc accept them. The targets are safe Rust, so the run
# looks for panics, overflows (debug assertions are on) and hangs, and skips AddressSanitizer
# (`-s none`), which would triple the build and halve the speed for nothing to find.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
secs="${1:-60}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(weights npy config tune_cache)
export RUSTC_BOOTSTRAP=1
# The fuzz build has its own flags; keep it out of any shared CARGO_TARGET_DIR.
export CARGO_TARGET_DIR="$root/fuzz/target"
cd "$root/fuzz"
for t in "${targets[@]}"; do
    corpus="corpus/$t"
    mkdir -p "$corpus" artifacts
    case "$t" in
        weights) seeds=("$root"/tests/fixtures/*.safetensors "$root"/tests/fixtures/family/*/model.safetensors
                         "$root"/weights/default.safetensors) ;;
        npy) seeds=("$root"/tests/fixtures/*.npy "$root"/tests/fixtures/preprocess/*.npy) ;;
        config) seeds=("$root"/tests/fixtures/family/*/config.json "$root"/fuzz/seeds/config/*) ;;
        tune_cache) seeds=("$root"/fuzz/seeds/tune_cache/*) ;;
        *) echo "unknown target $t (weights, npy, config, tune_cache)" >&2; exit 2 ;;
    esac
    for s in "${seeds[@]}"; do
        [ -e "$s" ] || continue
        # Family fixtures are all model.safetensors: name seeds by their folder too.
        name="$(basename "$(dirname "$s")")-$(basename "$s")"
        cp -n "$s" "$corpus/seed-$name"
        if [ "$t" = weights ]; then
            # The header alone too (the target makes up its data): small seeds to mutate.
            n=$(od -An -t u8 -N 8 "$s" | tr -d ' ')
            dd if="$s" of="$corpus/seed-header-$name.json" bs=64K \
                iflag=skip_bytes,count_bytes skip=8 count="$n" status=none
        fi
    done
    dict=()
    [ -f "dict/$t.dict" ] && dict=("-dict=dict/$t.dict")
    echo "== fuzzing $t for ${secs}s"
    # -timeout: one input taking over 10 s is reported as a hang; -rss_limit_mb: a parse that
    # tries to allocate gigabytes is reported as a finding, not an OOM of the machine.
    cargo fuzz run -s none "$t" "$corpus" -- \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 "${dict[@]}"
done
