"""Red-team checks of the 0.3.0 core change (in-place shuffle, checked give-backs,
``returnable_top``, pools without eviction), on the real stores. Each test states the
promise it holds the change to; a failure is a finding."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from io import BytesIO
from pathlib import Path

import pytest

from coder_ring import ALPHABET, InvalidInput, RingConfig, RingService
from tests.harness.shared import IN_CI, ServiceFactory

ONE = RingConfig("one", base_length=1)
REPO = Path(__file__).resolve().parents[2]


def top_picker(service: RingService) -> RingService:
    """A client of the same database whose every pick is the top position."""
    return RingService(service.store, service.rings, randbelow=lambda n: n - 1)


# --------------------------------------------------------------------------------------
# (e) a give-back reaching past the caller's own draw


def test_give_back_cannot_return_codes_another_caller_was_handed(
    make_service: ServiceFactory,
) -> None:
    """``give_back`` promises that "no give-back can put back a code that was not
    issued, or one issued elsewhere in the cycle, so none can make a code issued
    twice", and that ``values`` must be "the latest draws' values, exactly as Drawn
    gave them". Caller A is handed 3 codes. Caller B draws 1 code, and gives back its
    own value followed by A's three values, with B's own (current) epoch and version:
    the values do sit just above the boundary, so the check passes and A's codes are
    un-issued and handed out again."""
    service = make_service(ONE)
    alice = service.draw("one", 3)  # handed out to A's users
    bob = service.draw("one", 1)
    # Positions from the boundary up: B's value, then A's values (the last drawn lowest).
    values = bob.values[::-1] + alice.values[::-1]
    try:
        returned = service.give_back(
            "one", "", values, epoch=bob.ring.epoch, version=bob.extra.version
        )
    except InvalidInput:
        returned = False
    rest = service.draw("one", 32, within_cycle=True).codes
    handed = alice.codes + rest  # B's one code went back: B hands it out no more
    duplicates = sorted({code for code in handed if handed.count(code) > 1})
    assert not duplicates, f"codes issued twice in cycle 0: {duplicates}"
    assert not returned, "B's give-back of A's codes was accepted"
    assert sorted(set(handed) | set(bob.codes)) == sorted(ALPHABET)


# --------------------------------------------------------------------------------------
# (a) mixed 0.2.0 / 0.3.0: a 0.2.0 process wraps a cycle 0.3.0 used up

OLD_RELEASE = "ba09838"  # the commit the change starts from: coder_ring 0.2.0

OLD_DRAWS = """
import json, random, sys
from coder_ring import RingConfig, RingService, SqlStore
url, picks = sys.argv[1], sys.argv[2]
rng = random.Random(7)
randbelow = (lambda n: n - 1) if picks == "top" else rng.randrange
service = RingService(SqlStore(url), {"one": RingConfig("one", base_length=1)}, randbelow)
codes, errors = [], []
for _ in range(32):  # one request at a time, as a 0.2.0 worker's callers ask
    try:
        codes.append(service.get_code("one"))
    except Exception as error:
        errors.append(f"{type(error).__name__}: {str(error)[:120]}")
print(json.dumps({"codes": codes, "errors": errors}))
"""


def old_package(tmp_path: Path) -> Path:
    """coder_ring 0.2.0's package, from the repository's history."""
    try:
        archive = subprocess.run(
            ["git", "-C", str(REPO), "archive", OLD_RELEASE, "coder_ring"],
            check=True,
            capture_output=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError) as error:
        message = f"coder_ring 0.2.0 not available from git: {error}"
        if IN_CI:
            pytest.fail(message)  # CI clones the whole history: it must be there
        pytest.skip(message)  # not in CI: see the IN_CI branch above
    target = tmp_path / "old"
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(target, filter="data")
    return target


@pytest.mark.parametrize("picks", ["top", "random"])
def test_a_0_2_0_process_against_an_upgraded_database_is_refused_not_repeated(
    database_url: str, tmp_path: Path, picks: str
) -> None:
    """A rolling upgrade: a 0.3.0 worker migrates the database (0004) while a 0.2.0
    worker or direct caller still serves (its health probe does not run while it is
    healthy). 0.3.0 uses up cycle 0 of ring "one" (32 codes): at boundary 0 its table
    stores the whole cycle's permutation (issued values, kept for give-backs). 0.2.0
    wipes nothing when it wraps from boundary 0 and would read those rows as cycle 1's
    (with top picks a code of cycle 1 was issued twice; with random picks every request
    failed on a stale row). 0004 renames the table, so 0.2.0 fails cleanly instead."""
    import json
    import random

    from coder_ring import SqlStore

    service = RingService(SqlStore(database_url), {"one": ONE}, random.Random(3).randrange)
    service.migrate()
    cycle0 = service.get_codes("one", 32)
    assert sorted(cycle0) == sorted(ALPHABET)
    assert service.status("one").stored_positions > 0  # 0.3.0 keeps the cycle's rows
    service.close()

    env = {**os.environ, "PYTHONPATH": str(old_package(tmp_path))}
    result = subprocess.run(
        [sys.executable, "-c", OLD_DRAWS, database_url, picks],
        check=True,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        cwd=tmp_path,
    )
    out = json.loads(result.stdout.strip().splitlines()[-1])
    codes = out["codes"]
    duplicates = sorted({code for code in codes if codes.count(code) > 1})
    assert not duplicates, f"0.2.0 issued codes of cycle 1 twice: {duplicates}"
    # Mixed operation is refused, not unsafe: 0.2.0 meets a schema it cannot use (the
    # positions table was renamed) and says to migrate, with nothing drawn twice.
    assert out["errors"], "0.2.0 drew on against a 0.3.0 database"
    assert all(error.startswith("SchemaMissing") for error in out["errors"]), out["errors"][:2]
