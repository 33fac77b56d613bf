"""A long shape-driven fuzz of the JSON control planes against a fresh ``sageport serve``.

    python bench/fuzz.py [--examples 300] [--seed 0] [--ops CreateTrainingJob,...]

For every SageMaker and CloudWatch Logs operation in the dispatch table it sends
``--examples`` generated requests (see ``tests/api/fuzz_helpers.py``: mostly valid shapes with
hostile leaves, broken documents) signed over one keep-alive connection, and prints a
table: requests, 2xx, 4xx, 5xx, dropped connections and error bodies not in AWS form, per
operation and in total. The first few problems of each operation are printed with their
request, and the server log's tracebacks are counted. Results go to ``bench/results/fuzz.json``.
``tests/api/test_fuzz.py`` is the bounded version of this that CI runs.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "api"))

from botocore.model import OperationModel
from fuzz_helpers import (
    SERVICES,
    SETTINGS,
    Generator,
    Wire,
    implemented,
    json_error_problem,
    target_of,
)
from hypothesis import HealthCheck, Phase, given, seed, settings

from sageport.cli.process import ServerProcess

RESULTS = Path(__file__).parent / "results"


def probe_operation(
    wire: Wire, service: str, op: OperationModel, gen: Generator, examples: int, seed_value: int
) -> tuple[Counter[str], list[str]]:
    """Send ``examples`` generated requests for ``op``; their counts and the first problems."""
    counts: Counter[str] = Counter()
    seen: list[str] = []
    target = target_of(service, op)

    @seed(seed_value)
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(body=gen.body(op))
    def probe(body: bytes) -> None:
        outcome = wire.send(SERVICES[service][0], target, body)
        counts["requests"] += 1
        if outcome.dropped:
            counts["dropped"] += 1
        else:
            counts[f"{outcome.status // 100}xx"] += 1
        problem = json_error_problem(outcome)
        if problem and not outcome.dropped and outcome.status < 500:
            counts["bad_body"] += 1
        if problem and len(seen) < 5:
            seen.append(f"{problem}\n      request: {body[:300]!r}")

    probe()
    return counts, seen


def run(examples: int, seed_value: int, only: set[str]) -> dict[str, Any]:
    table: dict[str, Counter[str]] = {}
    problems: dict[str, list[str]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        data.mkdir()
        (data / "sageport.toml").write_text(SETTINGS)
        server = ServerProcess(data)
        server.start()
        wire = Wire("127.0.0.1", server.port, server.keys, server.region)
        try:
            for service in SERVICES:
                model, ops = implemented(service)
                gen = Generator(model)
                for op in ops:
                    if only and op.name not in only:
                        continue
                    start = time.monotonic()
                    counts, seen = probe_operation(wire, service, op, gen, examples, seed_value)
                    counts["seconds"] = round(time.monotonic() - start)
                    table[f"{service}:{op.name}"] = counts
                    problems[f"{service}:{op.name}"] = seen
                    print(_row(f"{service}:{op.name}", counts), flush=True)
        finally:
            wire.close()
            tracebacks = server.log_tail(10**7).count("Traceback (most recent call last)")
            server.stop()
    return {"table": table, "problems": problems, "tracebacks": tracebacks}


COLUMNS = ("requests", "2xx", "4xx", "5xx", "dropped", "bad_body")


def _row(name: str, counts: Counter[str]) -> str:
    return f"{name:<52}" + "".join(f"{counts.get(c, 0):>9}" for c in COLUMNS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=300, help="requests per operation")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ops", default="", help="comma-separated operation names")
    args = parser.parse_args()
    print(f"{'operation':<52}" + "".join(f"{c:>9}" for c in COLUMNS))
    started = time.monotonic()
    result = run(args.examples, args.seed, {o for o in args.ops.split(",") if o})
    total: Counter[str] = Counter()
    for counts in result["table"].values():
        total.update({c: counts.get(c, 0) for c in COLUMNS})
    print(_row("TOTAL", total))
    print(f"server tracebacks: {result['tracebacks']}; {time.monotonic() - started:.0f} s")
    for name, seen in result["problems"].items():
        for line in seen:
            print(f"  {name}: {line}")
    RESULTS.mkdir(exist_ok=True)
    out = {**result, "total": dict(total), "examples": args.examples, "seed": args.seed}
    (RESULTS / "fuzz.json").write_text(json.dumps(out, indent=2, default=str))


if __name__ == "__main__":
    main()
