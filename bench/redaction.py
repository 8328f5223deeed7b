"""How fast the engine masks secrets (agents/redaction.py), next to one regex pass as a floor.

Three texts of the kinds that enter conversations: a 200 KB source file (the read_file cap),
a 5 KB customer email and 2,000 NGINX access lines, each with a few secrets planted. For each:
the masker's MB/s and milliseconds per text, and a single compiled-regex `sub` over the same
text (what any regex-based masker costs at least) as the baseline, in the same run; then the
same text masked a second time (a tool's masked result passing the engine), which is a hash.

Usage:  .venv/bin/python bench/redaction.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def texts() -> dict[str, str]:
    from tests.corpus.secrets import SHAPES

    source = (ROOT / "sre" / "logs" / "nginx.py").read_text()
    code = (source * (200_000 // len(source) + 1))[:200_000]
    code += "\n" + "\n".join(s.line for s in SHAPES[:5])
    email = ("Hello, my order arrived broken and I would like a refund please. " * 70)[:5000]
    email += "\n" + "\n".join(s.line for s in SHAPES[25:30])
    line = '10.0.0.{n} - - [14/Mar/2025:09:25:01 +0000] "GET /api/orders/{n}?page=2 HTTP/1.1" 200 512 "-" "curl/8"'
    log = "\n".join(line.format(n=n % 250) for n in range(2000))
    log += "\n" + "\n".join(s.line for s in SHAPES[20:24])
    return {"source file (200 KB)": code, "email (5 KB)": email, "access log (2,000 lines)": log}


def timed(fn, text: str, repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn(text)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    import django

    django.setup()
    from agents import redaction
    from agents.redaction import mask

    def cold(text: str) -> str:
        redaction._recent.clear()
        return mask(text)

    floor = re.compile(r"\bsk_live_[A-Za-z0-9]{10,}")
    mask("warm up")
    print("| text | size | masker | MB/s | one regex pass | ratio | masked again |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, text in texts().items():
        ours = timed(cold, text, args.repeat)
        base = timed(lambda t: floor.sub("[REDACTED]", t), text, args.repeat)
        again = timed(mask, mask(text), args.repeat)
        size = len(text.encode())
        print(
            f"| {name} | {size / 1000:.0f} KB | {ours * 1000:.1f} ms | {size / ours / 1e6:.2f} "
            f"| {base * 1000:.2f} ms | {ours / base:.0f}× | {again * 1000:.2f} ms |"
        )


if __name__ == "__main__":
    main()
