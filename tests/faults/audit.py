"""What the run proves, from the callers' records, the database and the workers' logs.

Per ring (checked once the workers stopped gracefully, their pools given back):

* no code string reached two requests, across every extra and cycle of the ring;
* each code is well formed: its request's extra, then the uniquizer of some cycle,
  then ``base_length`` alphabet characters;
* no code received in the current cycle of its (ring, extra) is still unissued in the
  database: the positions below the extra's boundary (stored ones and the untouched
  ones, whose value is their position) hold exactly the cycle's unissued values;
* no position is stored outside its cycle (``store.stored_positions`` equals the rows
  read within the cycles' sizes);
* codes received <= codes issued, per (ring, extra) (``issued`` of the status);
* codes lost (issued minus received) stay within the bound: a pool per extra for each
  fault that hit the ring's holder without a graceful stop (SIGKILL, SIGSTOP, a Redis
  or a PostgreSQL restart) and for each "lock lost" a worker logged for it; the size of
  every request sent that failed or timed out (times its deliveries); and the size of
  every served request once per extra delivery (a request taken by a worker that died
  or froze after its draw committed is delivered again and drawn again: the first
  draw's codes are lost, never repeated), deliveries counted from the workers' logs.

Across the run: every request ended within its timeout (plus the slack of ``.delay()``
against a broker that is down) with codes or a clear error; every ring served again
after every fault, within 2x the lock TTL (plus a margin) after a SIGKILL or SIGTERM;
after the last fault, each ring's status through its holder (the ``status`` task,
``RingStatus.as_dict()``) names a worker of the run, with at most ``pool_size`` codes
pooled per extra.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from typing import Any

from coder_ring.alphabet import ALPHABET, decode_base, uniquizer
from coder_ring.service import RingService
from tests.faults.injections import Fault
from tests.faults.settings import (
    CLEAR_ERRORS,
    EXTRAS,
    RECOVERY_LIMIT,
    REQUEST_TIMEOUT,
    RINGS,
    SLACK,
    TAKEOVER_LIMIT,
)
from tests.harness import WorkerProcess

RECEIVED = re.compile(r"Task coder_ring\.get_codes?\[([0-9a-f-]+)\] received")
#: Faults that may lose the pools of the rings they hit (a SIGTERM gives them back).
POOL_LOSING = {"sigkill", "sigstop", "redis", "postgres"}
_BASE = f"[{re.escape(ALPHABET)}]"


def unissued_values(service: RingService, ring: str, extra: str) -> tuple[set[int], int] | None:
    """The values not yet issued in ``extra``'s current cycle, and how many positions
    are stored below its boundary (None when the extra was never used)."""
    with service.store.locked(ring, extra=extra) as locked:
        state = None if locked is None else locked.extra(extra)
        if locked is None or state is None:
            return None
        below = set(range(state.boundary))
        stored = locked.read_positions(extra, set(range(locked.record.total_codes)))
    return {stored.get(position, position) for position in below}, len(stored)


def split(code: str, extra: str, base_length: int) -> tuple[str, int] | None:
    """(uniquizer, base value) of ``code`` as a code of ``extra``; None if malformed."""
    if len(code) < len(extra) + base_length or not code.startswith(extra):
        return None
    middle, base = code[len(extra) : -base_length], code[-base_length:]
    if not re.fullmatch(f"{_BASE}*", middle) or not re.fullmatch(f"{_BASE}+", base):
        return None
    return middle, decode_base(base)


def ring_figures(
    ring: str,
    records: list[dict[str, Any]],
    service: RingService,
    *,
    faults: list[Fault],
    workers: Iterable[WorkerProcess],
    deliveries: Counter[str],
    problems: list[str],
) -> dict[str, Any]:
    """The figures of ``ring``; what is wrong is appended to ``problems``."""
    keys = RINGS[ring]
    mine = [r for r in records if r["ring"] == ring]
    counts = Counter(code for r in mine for code in r["codes"])
    duplicates = sorted(code for code, times in counts.items() if times > 1)
    if duplicates:
        problems.append(f"ring {ring}: {len(duplicates)} codes issued twice: {duplicates[:20]}")
    status = service.status(ring)
    by_extra = {state.extra: state for state in status.extras}
    received: dict[str, set[str]] = defaultdict(set)
    malformed, unissued, checked, rows = [], [], 0, 0
    for extra in EXTRAS:
        codes = {code for r in mine if r["extra"] == extra for code in r["codes"]}
        received[extra] = codes
        state = by_extra.get(extra)
        current = uniquizer(state.cycle) if state is not None else None
        free = unissued_values(service, ring, extra)
        if free is not None:
            rows += free[1]
        for code in sorted(codes):
            parts = split(code, extra, keys["base_length"])
            if parts is None:
                malformed.append(code)
            elif parts[0] == current and free is not None:
                checked += 1
                if parts[1] in free[0]:
                    unissued.append(code)
        issued = 0 if state is None else state.issued
        if len(codes) > issued:
            problems.append(
                f"ring {ring}, extra {extra!r}: {len(codes)} codes received > {issued} issued"
            )
    if malformed:
        problems.append(f"ring {ring}: malformed codes {malformed[:20]}")
    if unissued:
        problems.append(
            f"ring {ring}: {len(unissued)} codes received are unissued in the database "
            f"(they could be issued again): {unissued[:20]}"
        )
    stored = service.store.stored_positions(ring)
    if stored != rows:
        problems.append(f"ring {ring}: {stored} positions stored, {rows} within the cycles")

    hits = sum(1 for f in faults if f.kind in POOL_LOSING and ring in f.rings)
    lapses = sum(
        len(re.findall(rf"ring {ring}: lock lost", w.log_text(whole=True))) for w in workers
    )
    pools = (hits + lapses) * keys["pool_size"] * len(EXTRAS)
    sent = [r for r in mine if r["stage"] == "result"]  # a send that failed drew nothing
    failed = sum(r["size"] * max(1, deliveries[r["id"]]) for r in sent if r["error"])
    again = sum(r["size"] * max(0, deliveries[r["id"]] - 1) for r in sent if not r["error"])
    bound = pools + failed + again
    issued_total = sum(state.issued for state in status.extras)
    lost = issued_total - sum(len(codes) for codes in received.values())
    if lost > bound:
        problems.append(f"ring {ring}: {lost} codes lost > bound {bound}")
    return {
        "codes_received": sum(len(r["codes"]) for r in mine),
        "distinct": len(counts),
        "duplicates": len(duplicates),
        "issued": issued_total,
        "extras": {
            extra: {
                "received": len(received[extra]),
                "issued": by_extra[extra].issued if extra in by_extra else 0,
                "cycle": by_extra[extra].cycle if extra in by_extra else None,
                "remaining_in_cycle": (
                    by_extra[extra].remaining_in_cycle if extra in by_extra else None
                ),
            }
            for extra in EXTRAS
        },
        "checked_against_the_positions": checked,
        "stored_positions": stored,
        "lost": lost,
        "bound": bound,
        "bound_parts": {
            "pools": pools,
            "faults_hitting_the_holder": hits,
            "locks_lost_in_logs": lapses,
            "failed_requests": failed,
            "requests_delivered_again": again,
        },
        "gave_back_logged": sum(w.gave_back(ring) for w in workers),
    }


def check_statuses(
    statuses: dict[str, dict[str, Any]], workers: Iterable[WorkerProcess], problems: list[str]
) -> dict[str, Any]:
    """The holders' statuses after the faults: each names a worker of the run as holder,
    and its pools (per extra and in all) hold at most ``pool_size`` codes per extra."""
    names = {worker.hostname for worker in workers}
    for ring, status in statuses.items():
        pooled = {extra["extra"]: extra["pooled"] for extra in status["extras"]}
        size = RINGS[ring]["pool_size"]
        if status["holder"] not in names:
            problems.append(f"ring {ring}: status names holder {status['holder']!r}")
        if any(n is None or n > size for n in pooled.values()) or status["pooled"] != sum(
            n or 0 for n in pooled.values()
        ):
            problems.append(f"ring {ring}: pools {pooled}, {status['pooled']} in all")
    return {
        ring: {"holder": status["holder"], "pooled": status["pooled"], "epoch": status["epoch"]}
        for ring, status in statuses.items()
    }


def fault_report(
    faults: list[Fault],
    workers: Iterable[WorkerProcess],
    service: RingService,
    records: list[dict[str, Any]],
    statuses: dict[str, dict[str, Any]] | None = None,
) -> tuple[dict[str, Any], list[str]]:
    """Every figure of the run, and the problems found (empty when all holds)."""
    workers = list(workers)
    problems: list[str] = []
    held = check_statuses(statuses or {}, workers, problems)
    deliveries = Counter(
        task_id for worker in workers for task_id in RECEIVED.findall(worker.log_text(whole=True))
    )
    rings = {
        ring: ring_figures(
            ring,
            records,
            service,
            faults=faults,
            workers=workers,
            deliveries=deliveries,
            problems=problems,
        )
        for ring in RINGS
    }
    callers = [r for r in records if r["caller"] != "probe"]  # probes are polled
    late = [r for r in callers if r["ended"] - r["sent"] > REQUEST_TIMEOUT + SLACK]
    if late:
        problems.append(f"{len(late)} requests took longer than timeout + slack: {late[:5]}")
    unclear = [r for r in records if r["error"] and r["error"] not in CLEAR_ERRORS]
    if unclear:
        problems.append(f"{len(unclear)} requests failed with an unexpected error: {unclear[:5]}")
    errors = Counter(f"{r['error']} ({r['stage']})" for r in records if r["error"])
    examples: dict[str, str] = {}
    for r in records:
        if r["error"]:
            examples.setdefault(r["error"], r["message"])
    recovery_max: dict[str, float] = {}
    for f in faults:
        if f.kind == "sigterm" and f.exit_code != 0:
            problems.append(f"{f.victim}, SIGTERMed under load, exited with {f.exit_code}")
        hit = [t for ring, t in f.recovery.items() if ring in f.rings and t is not None]
        if hit:
            recovery_max[f.label] = round(max([recovery_max.get(f.label, 0.0), *hit]), 2)
        for ring, t in f.recovery.items():
            if t is None:
                problems.append(
                    f"ring {ring} served nothing within {RECOVERY_LIMIT} s of {f.label}"
                )
            elif f.kind in {"sigkill", "sigterm"} and ring in f.rings and t > TAKEOVER_LIMIT:
                problems.append(f"ring {ring}: first code {t:.1f} s after {f.kind} of {f.victim}")
    report = {
        "codes_received": sum(len(r["codes"]) for r in records),
        "requests": len(records),
        "requests_ok": sum(1 for r in records if not r["error"]),
        "longest_caller_request_s": round(
            max((r["ended"] - r["sent"] for r in callers), default=0), 3
        ),
        "recovery_max_s": recovery_max,
        "rings": rings,
        "holders_at_the_end": held,
        "faults": [
            {
                "fault": f.label,
                "victim": f.victim,
                "rings_hit": f.rings,
                "first_code_after_s": {
                    ring: None if t is None else round(t, 3) for ring, t in f.recovery.items()
                },
                "note": f.note,
            }
            for f in faults
        ],
        "errors_by_type": dict(errors.most_common()),
        "error_examples": examples,
    }
    return report, problems


def print_report(report: dict[str, Any]) -> None:
    """The figures, for a human (pytest -s)."""
    settings = report["settings"]
    print(f"\n==== fault injection: {report['codes_received']} codes in {report['seconds']} s ====")
    print(
        f"requests: {report['requests']} ({report['requests_ok']} ok), "
        f"rounds of faults: {report['rounds']}, seed {settings['seed']}"
    )
    for ring, figures in report["rings"].items():
        parts = figures["bound_parts"]
        extras = ", ".join(
            f"{extra!r}: {e['received']} received/{e['issued']} issued, cycle {e['cycle']}"
            for extra, e in figures["extras"].items()
        )
        print(
            f"ring {ring}: {figures['codes_received']} codes, {figures['duplicates']} duplicates, "
            f"issued {figures['issued']}, lost {figures['lost']} <= bound {figures['bound']} "
            f"(pools {parts['pools']} = {parts['faults_hitting_the_holder']} faults + "
            f"{parts['locks_lost_in_logs']} locks lost, failed {parts['failed_requests']}, "
            f"delivered again {parts['requests_delivered_again']}); "
            f"{figures['checked_against_the_positions']} codes of current cycles checked "
            f"against the positions; {figures['stored_positions']} positions stored; "
            f"given back {figures['gave_back_logged']}\n    extras: {extras}"
        )
    print("recovery (fault -> first code served after it):")
    for fault in report["faults"]:
        times = ", ".join(
            f"{ring} {'never' if t is None else f'{t:.2f} s'}"
            for ring, t in fault["first_code_after_s"].items()
        )
        note = f" ({fault['note']})" if fault["note"] else ""
        victim = fault["victim"] or ""
        print(f"  {fault['fault']:14} {victim:3} hit {fault['rings_hit']}: {times}{note}")
    print(f"longest recovery by fault (rings hit): {report['recovery_max_s']}")
    print(f"holders after the faults (status task): {report['holders_at_the_end']}")
    print(f"longest caller request: {report['longest_caller_request_s']} s")
    print(f"seconds by phase: {report['phases_s']}")
    print(f"errors by type: {report['errors_by_type'] or 'none'}")
    for name, message in report["error_examples"].items():
        print(f"  {name}: {message[:160]}")
