"""Deterministic ZTL data set for the performance targets of issue #5: a permit register
(CONTRACT §6.2) and gate transits (§6.4) for the example policy.

Usage: python3 bench/ztl_gen.py OUT_DIR [PERMIT_ROWS] [TRANSITS]   (defaults 100000, 1000000)
Writes OUT_DIR/permits.csv and OUT_DIR/transits.csv; the same arguments give the same bytes.
"""
import os
import random
import string
import sys
from datetime import datetime, timedelta, timezone

out, n_permits, n_transits = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 100_000, int(sys.argv[3]) if len(sys.argv) > 3 else 1_000_000
rng = random.Random(20261129)
os.makedirs(out, exist_ok=True)
categories = ["residenti"] * 6 + ["dimoranti"] * 2 + ["carico_scarico", "cude", "medici", "giornaliero"]
odd = "ABCDEFGHJKLMNPRSTVWXYZ"
check = "BAKPLCQDREVOSFTGUHMINJWZYX"


def fiscal_code(i):
    # A well-formed person code: surname, name, year, month, day, place, check letter.
    body = "".join(rng.choice(odd) for _ in range(6)) + f"{rng.randint(30, 99):02d}" + rng.choice("ABCDEHLMPRST") + f"{rng.randint(1, 28):02d}" + rng.choice(odd) + f"{rng.randint(100, 999)}"
    odd_values = {c: v for c, v in zip("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", [1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 2, 4, 18, 20, 11, 3, 6, 8, 12, 14, 16, 10, 22, 25, 24, 23])}
    even_values = {c: (int(c) if c.isdigit() else ord(c) - 65) for c in "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"}
    total = sum(odd_values[c] if k % 2 == 0 else even_values[c] for k, c in enumerate(body))
    return body + chr(65 + total % 26)


def plate():
    return "".join(rng.choice(odd) for _ in range(2)) + f"{rng.randint(0, 999):03d}" + "".join(rng.choice(odd) for _ in range(2))


plates = []
start = datetime(2025, 1, 1, tzinfo=timezone.utc)
with open(os.path.join(out, "permits.csv"), "w", newline="") as f:
    f.write("permit,category,holder_fiscal_code,holder_name,plate,country,valid_from,valid_to,status\n")
    row = 0
    permit = 0
    while row < n_permits:
        cat = rng.choice(categories)
        fc = fiscal_code(permit)
        vehicles = 2 if cat in ("residenti", "cude") and rng.random() < 0.4 else 1
        frm = start + timedelta(days=rng.randint(0, 600))
        to = frm + timedelta(days=rng.choice([1, 30, 365, 730]))
        status = rng.choices(["active", "suspended", "revoked"], [92, 4, 4])[0]
        for _ in range(vehicles):
            if row == n_permits:
                break
            p = plate()
            plates.append(p)
            country = "IT" if rng.random() < 0.95 else rng.choice(["DE", "FR", "CH", "AT"])
            if rng.random() < 0.5:
                vf, vt = frm.date().isoformat(), to.date().isoformat()
            else:
                vf, vt = frm.isoformat(), to.isoformat()
            f.write(f"P{permit:07d},{cat},{fc},Titolare {permit},{p},{country},{vf},{vt},{status}\n")
            row += 1
        permit += 1

gates = ["V01", "V02", "V03", "V04", "V05", "V06", "N01", "N02"]
offsets = [timezone.utc, timezone(timedelta(hours=1)), timezone(timedelta(hours=2)), timezone(timedelta(hours=-5))]
span = int(timedelta(days=700).total_seconds())
with open(os.path.join(out, "transits.csv"), "w", newline="") as f:
    f.write("transit_id,gate,plate,country,timestamp\n")
    for i in range(n_transits):
        p = rng.choice(plates) if rng.random() < 0.7 else plate()
        if rng.random() < 0.2:
            p = p[:2].lower() + " " + p[2:5] + " " + p[5:].lower()
        country = "" if rng.random() < 0.8 else "IT"
        at = (start + timedelta(seconds=rng.randrange(span))).astimezone(rng.choice(offsets))
        f.write(f"T{i:08d},{rng.choice(gates)},{p},{country},{at.isoformat(timespec='seconds')}\n")
