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
python3 - "$dir/maildir" "$N" <<'PY'
import base64, os, sys
root, n = sys.argv[1], int(sys.argv[2])
os.makedirs(os.path.join(root, "cur")); os.makedirs(os.path.join(root, "new")); os.makedirs(os.path.join(root, "tmp"))
pdf = base64.encodebytes(b"%PDF-1.4\n" + os.urandom(100 * 1024)).decode().replace("\n", "\r\n")
new = 0
for i in range(n):
    head = f"From: Cittadino {i % 3000} <c{i % 3000}@example.it>\r\nTo: permessi@comune.example.it\r\nMessage-ID: <bench-{i}@example.it>\r\nDate: Thu, 26 Nov 2026 10:00:00 +0100\r\nMIME-Version: 1.0\r\n"
    kind = i % 10
    if kind < 3 or new == 0:
        new += 1
        body = (f"Subject: Richiesta permesso {i}\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nChiedo il permesso.\r\n"
                f"--b\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"libretto.pdf\"\r\n\r\n{pdf}--b--\r\n")
    elif kind < 7:
        body = f"Subject: Re: [ZTL-2026-{1 + i % new:06}] documenti\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nEcco i documenti.\r\n"
    else:
        body = f"Subject: Re: domanda\r\nIn-Reply-To: <bench-{i - 7}@example.it>\r\nContent-Type: text/plain\r\n\r\nGrazie.\r\n"
    with open(os.path.join(root, "cur", f"{i:08d}.eml"), "w") as f:
        f.write(head + body)
PY
printf 'data_dir = "%s/data"\n' "$dir" >"$dir/sportello.toml"
echo "machine: $(nproc) cores, $(uname -srm); $N messages, $(du -sh "$dir/maildir" | cut -f1)"
t0=$(date +%s.%N)
"$BIN" --config "$dir/sportello.toml" ingest "$dir/maildir" >"$dir/out.jsonl"
t1=$(date +%s.%N)
secs=$(echo "$t1 - $t0" | bc)
echo "ingested $(wc -l <"$dir/out.jsonl") messages in ${secs} s = $(echo "$N / $secs" | bc) messages/s"
grep -o '"outcome":"[a-z_]*"' "$dir/out.jsonl" | sort | uniq -c
