#!/usr/bin/env bash
# Coverage-guided fuzzing (cargo-fuzz, libFuzzer, nightly) of every parser of
# outside bytes: the targets of src/fuzzing.rs (fuzz/fuzz_targets/).
#   scripts/fuzz.sh [MINUTES per target (default 5)] [TARGET ...]
# New inputs that add coverage are merged into fuzz/corpus/<target> (commit
# them: tests/fuzz_corpus.rs replays the corpus on stable in CI); a crash is
# copied there too, and the script ends non-zero, naming it.
set -euo pipefail
cd "$(dirname "$0")/.."
minutes="${1:-5}"
shift || true
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    cargo install --locked cargo-fuzz
fi
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo +nightly fuzz list --fuzz-dir fuzz)
fi
# The project's one target dir (no second copy of the build).
export CARGO_TARGET_DIR="$PWD/target"
work="$CARGO_TARGET_DIR/fuzz-work"
status=0
for t in "${targets[@]}"; do
    mkdir -p "$work/$t" "fuzz/corpus/$t" "fuzz/artifacts/$t"
    echo "== $t: $minutes min"
    if ! cargo +nightly fuzz run --fuzz-dir fuzz "$t" "$work/$t" "fuzz/corpus/$t" -- \
        -max_total_time=$((minutes * 60)) -max_len=4096 -timeout=10 \
        -artifact_prefix="fuzz/artifacts/$t/" -print_final_stats=1; then
        status=1
        for c in fuzz/artifacts/"$t"/crash-* fuzz/artifacts/"$t"/timeout-* fuzz/artifacts/"$t"/oom-*; do
            [ -e "$c" ] || continue
            cp "$c" "fuzz/corpus/$t/"
            echo "CRASH in $t: $c (copied to fuzz/corpus/$t; fix it, tests/fuzz_corpus.rs replays it)"
        done
    fi
    # Keep only inputs that add coverage.
    cargo +nightly fuzz run --fuzz-dir fuzz "$t" -- -merge=1 "fuzz/corpus/$t" "$work/$t" \
        >/dev/null 2>&1 || true
    echo "== $t: $(ls "fuzz/corpus/$t" | wc -l) corpus inputs"
done
exit $status
