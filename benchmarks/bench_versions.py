"""Speed of this working tree against an earlier revision, side by side, as a ratio.

A refactor must not slow adaptrl down; a timing measured on one day and compared with a
number from another day says little on a shared machine. This script measures both in
one run: it exports ``--base`` (a git revision) to a temporary folder, then runs the same
benchmark script of each tree (its own copy, against its own ``src/``) in fresh
processes, alternating old / new for ``--rounds`` rounds so that load drifts hit both
alike, and prints the median of every numeric column of the benchmark's table for both
trees and their ratio (new / old; for times, > 1 is slower).

    python benchmarks/bench_versions.py --base 20ae2b3 -- bench_rl2.py --threads 1
    python benchmarks/bench_versions.py --base 20ae2b3 --rounds 5 -- bench_maml.py --quick \\
        --threads 1 --iters 3

The benchmark's table rows are recognised by their label (the first field, e.g. the
config or policy name) and the header line above them; everything else is ignored.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NUMBER = re.compile(r"^-?[\d,]*\.?\d+$")


def export(revision: str, into: Path) -> Path:
    """``revision``'s tree, extracted into ``into`` (git archive: no checkout, no index)."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", revision],
                             check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def run(tree: Path, script: list[str]) -> str:
    """The benchmark's output, run from ``tree`` against ``tree/src``."""
    env = {**os.environ, "PYTHONPATH": str(tree / "src")}
    out = subprocess.run([sys.executable, str(tree / "benchmarks" / script[0]), *script[1:]],
                         cwd=tree, env=env, check=True, capture_output=True, text=True)
    return out.stdout


def table(output: str) -> tuple[dict[str, list[float]], str]:
    """``({row label: numbers}, header)``: the rows of ``output`` whose fields after the
    label are numbers (thousands separators allowed), and the last line above them that
    has no numbers (the benchmark's column header, printed as is for reference)."""
    rows: dict[str, list[float]] = {}
    header, last_text = "", ""
    for line in output.splitlines():
        fields = [f for f in re.split(r"[\s|]+", line.strip()) if f]
        label = [f for f in fields if not NUMBER.match(f)]
        numbers = [float(f.replace(",", "")) for f in fields if NUMBER.match(f)]
        if len(numbers) >= 2 and len(label) <= 3:
            rows[" ".join(label)] = numbers
            header = header or last_text
        elif fields and not numbers and set(line.strip()) - set("-=+| "):
            last_text = line.strip()  # a header, not a rule of dashes
    return rows, header


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="git revision to compare against")
    parser.add_argument("--rounds", type=int, default=3, help="alternating old/new runs")
    parser.add_argument("script", nargs=argparse.REMAINDER,
                        help="-- benchmark script (in benchmarks/) and its arguments")
    args = parser.parse_args()
    script = [a for a in args.script if a != "--"]
    if not script:
        parser.error("give the benchmark after --, e.g. -- bench_rl2.py --threads 1")
    with tempfile.TemporaryDirectory() as tmp:
        base = export(args.base, Path(tmp))
        samples: dict[str, list[dict[str, list[float]]]] = {"old": [], "new": []}
        header = ""
        for r in range(args.rounds):
            for name, tree in (("old", base), ("new", ROOT)):
                rows, header = table(run(tree, script))
                samples[name].append(rows)
                print(f"round {r + 1}/{args.rounds} {name} done", file=sys.stderr)
    old, new = samples["old"], samples["new"]
    print(f"{' '.join(script)}: median of {args.rounds} alternating runs; "
          f"old = {args.base}, new = this working tree")
    print(f"columns, in the benchmark's order: {header}")
    for row, values in new[0].items():
        for i in range(len(values)):
            a = [s[row][i] for s in old if len(s.get(row, [])) > i]
            b = [s[row][i] for s in new if len(s.get(row, [])) > i]
            if a and b and statistics.median(a) != 0:
                ma, mb = statistics.median(a), statistics.median(b)
                print(f"{row:28s} column {i + 1:2d} {ma:12.4g} {mb:12.4g}  new/old {mb / ma:6.3f}")


if __name__ == "__main__":
    main()
