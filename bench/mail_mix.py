"""Writes the intake benchmarks' mail mix into a maildir: 30 % new requests with a 100 KB
PDF, 40 % replies naming their case reference, 30 % replies by In-Reply-To.

Usage: python3 bench/mail_mix.py MAILDIR N [cur|new]
In `cur` the files are named by number (for `sportello ingest`); in `new` by an increasing
timestamp, so that Dovecot gives UIDs in generation order."""
import base64
import os
import sys

root, n = sys.argv[1], int(sys.argv[2])
folder = sys.argv[3] if len(sys.argv) > 3 else "cur"
for sub in ("cur", "new", "tmp"):
    os.makedirs(os.path.join(root, sub), exist_ok=True)
pdf = base64.encodebytes(b"%PDF-1.4\n" + os.urandom(100 * 1024)).decode().replace("\n", "\r\n")
new = 0
for i in range(n):
    head = (f"From: Cittadino {i % 3000} <c{i % 3000}@example.it>\r\nTo: permessi@comune.example.it\r\n"
            f"Message-ID: <bench-{i}@example.it>\r\nDate: Thu, 26 Nov 2026 10:00:00 +0100\r\nMIME-Version: 1.0\r\n")
    kind = i % 10
    if kind < 3 or new == 0:
        new += 1
        body = (f"Subject: Richiesta permesso {i}\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n"
                "--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nChiedo il permesso.\r\n"
                "--b\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n"
                f"Content-Disposition: attachment; filename=\"libretto.pdf\"\r\n\r\n{pdf}--b--\r\n")
    elif kind < 7:
        body = (f"Subject: Re: [ZTL-2026-{1 + i % new:06}] documenti\r\n"
                "Content-Type: text/plain; charset=utf-8\r\n\r\nEcco i documenti.\r\n")
    else:
        body = (f"Subject: Re: domanda\r\nIn-Reply-To: <bench-{i - 7}@example.it>\r\n"
                "Content-Type: text/plain\r\n\r\nGrazie.\r\n")
    name = f"{i:08d}.eml" if folder == "cur" else f"{1700000000 + i}.M{i}P1.bench"
    with open(os.path.join(root, folder, name), "w", newline="") as f:
        f.write(head + body)
