#!/usr/bin/env python3
"""Uploads COUNT documents of SIZE random bytes (incompressible, like scanned PDFs; no PDF
header, so the background text reader files them as `none` at once instead of running a
PDF tool on noise) to random existing cases, through the API, with THREADS keep-alive
connections. Used by bench/backup.sh.

usage: backup_docs.py URL TOKEN YEAR CASES COUNT SIZE THREADS
"""
import http.client
import os
import random
import sys
import threading
import time
import urllib.parse

url, token, year = sys.argv[1], sys.argv[2], sys.argv[3]
cases, count, size, threads = (int(x) for x in sys.argv[4:8])
parsed = urllib.parse.urlparse(url)
lock = threading.Lock()
next_index = [0]
failures = []


def take():
    with lock:
        if next_index[0] >= count:
            return None
        next_index[0] += 1
        return next_index[0]


def worker():
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=120)
    rng = random.Random()
    while True:
        i = take()
        if i is None:
            return
        ref = f"ZTL-{year}-{rng.randint(1, cases):06d}"
        boundary = f"----sportello{i:08d}"
        head = (
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
            f"filename=\"scansione-{i}.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n"
        ).encode()
        body = head + os.urandom(size) + f"\r\n--{boundary}--\r\n".encode()
        conn.request(
            "POST",
            f"/api/v1/cases/{ref}/documents",
            body=body,
            headers={
                "Authorization": f"Bearer {token}",
                "Content-Type": f"multipart/form-data; boundary={boundary}",
            },
        )
        resp = conn.getresponse()
        resp.read()
        if resp.status != 201:
            with lock:
                failures.append((ref, resp.status))


t0 = time.time()
pool = [threading.Thread(target=worker) for _ in range(threads)]
for t in pool:
    t.start()
for t in pool:
    t.join()
elapsed = time.time() - t0
print(
    f"uploaded {count - len(failures)} documents of {size} bytes in {elapsed:.0f} s "
    f"({count * size / elapsed / 1e6:.1f} MB/s), {len(failures)} failed {failures[:3]}"
)
sys.exit(1 if failures else 0)
