#!/usr/bin/env python3
"""Reads a schemathesis NDJSON report (scripts/fuzz.sh) against the OpenAPI document it ran on.

Counts, per operation, the test cases generated, the checks that failed, the answers by status, and whether
any answer got past routing (an answer other than 405, or a 404 other than the router's `not_found` for an
unknown route). Fails (exit 1) on any failed check, on fewer than --min-cases cases in all, on an operation of
the document with no case, or, with --strict-routes, on an operation no answer of which got past routing (a
documented operation the server does not serve).

    scripts/fuzz_report.py --report DIR --document openapi.json --min-cases 1000 [--strict-routes]
"""
import argparse
import base64
import collections
import glob
import json
import sys

METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")


def routed(response):
    """Whether an answer came from an operation rather than from the router's 404/405."""
    status = response.get("status_code")
    if status == 405:
        return False
    if status != 404:
        return True
    content = response.get("content") or {}
    raw = base64.b64decode(content["$base64"]) if "$base64" in content else (content.get("string") or "").encode()
    try:
        error = json.loads(raw)["error"]
    except (ValueError, KeyError, TypeError):
        return False  # an empty 404 (HEAD) tells nothing
    # The router's unknown-route 404 names no field; an operation's own 404s have another code or a field.
    return not (error.get("code") == "not_found" and "field" not in error)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--report", required=True, help="schemathesis --report-dir")
    ap.add_argument("--document", required=True)
    ap.add_argument("--min-cases", type=int, default=1000)
    ap.add_argument("--strict-routes", action="store_true")
    args = ap.parse_args()

    doc = json.load(open(args.document, encoding="utf-8"))
    operations = [f"{m.upper()} {p}" for p, item in doc["paths"].items() for m in METHODS if m in item]
    files = glob.glob(f"{args.report}/ndjson*.ndjson")
    if len(files) != 1:
        sys.exit(f"fuzz-report: expected one NDJSON report in {args.report}, found {len(files)}")

    cases = collections.Counter()
    statuses = collections.defaultdict(collections.Counter)
    past_routing = collections.Counter()
    failed = []
    seen = set()
    for line in open(files[0], encoding="utf-8"):
        event = json.loads(line)
        finished = event.get("ScenarioFinished")
        if not finished:
            continue
        recorder = finished["recorder"]
        label = recorder["label"]
        for case_id, checks in recorder.get("checks", {}).items():
            if (label, case_id) in seen:
                continue
            seen.add((label, case_id))
            # A stateful scenario's label is its chain; each case belongs to the operation it called.
            case = recorder["cases"].get(case_id, {}).get("value", {})
            op = f"{case.get('method', '').upper()} {case.get('path', '')}" if case else label
            cases[op] += 1
            response = (recorder.get("interactions", {}).get(case_id) or {}).get("response") or {}
            if response:
                statuses[op][response.get("status_code")] += 1
                if routed(response):
                    past_routing[op] += 1
            for check in checks:
                if check.get("status") == "failure":
                    failed.append(f"{op} [{case_id}]: {check.get('name')}")

    total = sum(cases.values())
    width = max(len(o) for o in operations)
    for op in operations:
        spread = " ".join(f"{s}x{n}" for s, n in sorted(statuses[op].items(), key=lambda x: (x[0] is None, x[0])))
        note = "" if past_routing[op] else "  (never past routing: not served?)"
        print(f"  {op:<{width}}  {cases[op]:>5} cases  {spread}{note}")
    problems = []
    if failed:
        problems.append(f"{len(failed)} failed checks:\n    " + "\n    ".join(failed[:50]))
    if total < args.min_cases:
        problems.append(f"{total} test cases, fewer than {args.min_cases}")
    untested = [op for op in operations if cases[op] == 0]
    if untested:
        problems.append("operations with no test case: " + ", ".join(untested))
    unrouted = [op for op in operations if cases[op] and not past_routing[op]]
    if unrouted:
        message = "operations the server does not serve (only 404 unknown route / 405): " + ", ".join(unrouted)
        if args.strict_routes:
            problems.append(message)
        else:
            print(f"fuzz-report: WARNING: {message}")
    print(f"fuzz-report: {total} test cases over {sum(1 for op in operations if cases[op])}/{len(operations)} operations, {len(failed)} failed checks")
    for p in problems:
        print(f"fuzz-report: {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
