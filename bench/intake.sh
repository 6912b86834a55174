#!/usr/bin/env bash
# Intake throughput of issue #3: `sportello ingest` of a generated maildir (mixed new
# requests, replies by reference and by In-Reply-To; 30 % with a 100 KB PDF), SQLite,
# OCR off (no fax in the mix). Usage: N=10000 bench/intake.sh
set -euo pipefail
cd "$(dirname "$0")/.."
N="${N:-10000}"
cargo build --release -q -p sportello --bin sportello
BIN="${CARGO_TARGET_DIR:-target}/release/sportello"
dir="$(mktemp -d /tmp/sportello-intake-bench.XXXXXX)"
trap 'rm -rf "$dir"' EXIT
python3 bench/mail_mix.py "$dir/maildir" "$N" cur
printf 'data_dir = "%s/data"\n' "$dir" >"$dir/sportello.toml"
echo "machine: $(nproc) cores, $(uname -srm); $N messages, $(du -sh "$dir/maildir" | cut -f1)"
t0=$(date +%s.%N)
"$BIN" --config "$dir/sportello.toml" ingest "$dir/maildir" >"$dir/out.jsonl"
t1=$(date +%s.%N)
secs=$(echo "$t1 - $t0" | bc)
echo "ingested $(wc -l <"$dir/out.jsonl") messages in ${secs} s = $(echo "$N / $secs" | bc) messages/s"
grep -o '"outcome":"[a-z_]*"' "$dir/out.jsonl" | sort | uniq -c
