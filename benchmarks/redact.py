"""Redaction is linear in the size of the output: time per MB for 0.25, 1 and 4 MB of mixed output.

Run: ``python benchmarks/redact.py [--runs N]``. With a 4096-bit PEM key and a token registered, redacts
lines of URLs (with and without userinfo), base64 and plain text, plus one line of 200 KB, and prints the
median time of each size and its ratio to the 0.25 MB case per MB (about 1.0 when linear; the old
quadratic URL pattern took minutes for the 200 KB line alone).
"""

from __future__ import annotations

import argparse
import base64
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flowdeck.redact import StreamRedactor, redact, register_secret


def _output(size: int, rng: random.Random) -> str:
    pieces = ["https://user:pass@host/x", "http://tok@h/", "scheme://", "plain words here", "@@",
              base64.b64encode(rng.randbytes(48)).decode()]
    lines, total = [], 0
    while total < size:
        line = " ".join(rng.choice(pieces) for _ in range(12))
        lines.append(line)
        total += len(line) + 1
    lines.append("a" * 200_000)
    return "\n".join(lines)


def _time(text: str, runs: int) -> float:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        redact(text)
        stream = StreamRedactor()
        for i in range(0, len(text), 4096):
            stream.feed(text[i:i + 4096])
        stream.finish()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    key = subprocess.run(["openssl", "genrsa", "4096"], capture_output=True, text=True, check=True).stdout
    register_secret(key)
    register_secret("ghp_" + "Zz9" * 12)
    rng = random.Random(1)
    base = None
    for megabytes in (0.25, 1, 4):
        text = _output(int(megabytes * 1_000_000), rng)
        seconds = _time(text, args.runs)
        per_mb = seconds / (len(text) / 1_000_000)
        base = base or per_mb
        print(f"{megabytes:>5} MB: {seconds:.3f}s  ({per_mb:.3f}s/MB, ratio {per_mb / base:.2f})")


if __name__ == "__main__":
    main()
