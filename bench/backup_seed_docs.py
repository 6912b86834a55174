#!/usr/bin/env python3
"""Seeds COUNT documents of SIZE random bytes straight into a stopped SQLite installation,
the way the store keeps them: each file under DATA/documents/sha256/XX/SHA (content
addressed, 0600) and one `documents` row on a random existing case (`text_status` none:
random bytes have no text to read). Much faster than uploading 10 GB through the API on a
two-core machine; `sportello documents verify` checks the result. Used by bench/backup.sh.

usage: backup_seed_docs.py DATA_DIR COUNT SIZE
"""
import hashlib
import os
import random
import sqlite3
import sys
import time

data, count, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
db = sqlite3.connect(os.path.join(data, "sportello.db"), timeout=30)
case_ids = [row[0] for row in db.execute("SELECT id FROM cases")]
if not case_ids:
    sys.exit("no cases to attach documents to")
now_ms = int(time.time() * 1000)
rng = random.Random(16)
t0 = time.time()
written = 0
for i in range(count):
    blob = os.urandom(size)
    sha = hashlib.sha256(blob).hexdigest()
    folder = os.path.join(data, "documents", "sha256", sha[:2])
    os.makedirs(folder, mode=0o700, exist_ok=True)
    path = os.path.join(folder, sha)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(blob)
    db.execute(
        "INSERT INTO documents (id, case_id, sha256, filename, media_type, size, uploaded_at, "
        "uploaded_by, text_status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'none')",
        (
            f"{rng.getrandbits(128):032x}",
            rng.choice(case_ids),
            sha,
            f"scansione-{i}.pdf",
            "application/pdf",
            size,
            now_ms,
            "bench",
        ),
    )
    written += size
    if i % 1000 == 999:
        db.commit()
db.commit()
db.close()
elapsed = time.time() - t0
print(f"seeded {count} documents of {size} bytes in {elapsed:.0f} s ({written / elapsed / 1e6:.0f} MB/s)")
