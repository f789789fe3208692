"""The bad-input catalogue of ``test_bad_inputs*.py``: the one ring the tests use,
:data:`CALLS` (bad calls of ``get_code``/``get_codes`` and how each interface must refuse
them), :data:`RINGS_FILES` (bad rings files and what their errors must show) and
:data:`READERS` (the commands that read the rings file)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from coder_ring import ExtraConflict, InvalidInput, UnknownRing
from coder_ring.celery.names import TASK_GET_CODE, TASK_GET_CODES

RING = "one"
POOL = 8
RING_KEYS = {"base_length": 1, "pool_size": POOL}
NAMESPACE = "badinputs"
RESULT_TIMEOUT = 10.0


@dataclass(frozen=True)
class Call:
    """A bad call of ``get_code``/``get_codes`` and how each interface must refuse it."""

    item: str
    task: str
    args: tuple[Any, ...]
    kwargs: Mapping[str, Any]
    error: type[Exception]
    #: Texts the error message must contain (from the tasks and ``get --direct``).
    shown: tuple[str, ...]
    #: The same through ``coder-ring get``: its arguments after ``get``, or None when the
    #: command line cannot express the value (every argument is text there).
    cli: tuple[str, ...] | None
    #: Texts of the CLI's one-line error, and its exit code (2: a usage error).
    cli_shown: tuple[str, ...] = ()
    cli_exit: int = 1
    #: Refused by ``.delay()`` itself (False: only the worker can tell, from the database).
    in_caller: bool = True


CALLS = [
    Call(
        "unknown ring",
        TASK_GET_CODE,
        ("nope",),
        {},
        UnknownRing,
        ("unknown ring 'nope'", "configured rings: one"),
        ("nope",),
    ),
    Call(
        "ring not a str",
        TASK_GET_CODE,
        (26,),
        {},
        UnknownRing,
        ("unknown ring 26", "configured rings: one"),
        None,
    ),
    Call(
        "extra too long",
        TASK_GET_CODE,
        (RING,),
        {"extra": "x" * 33},
        InvalidInput,
        (f"invalid extra {'x' * 33!r}", "33 characters, at most 32"),
        (RING, "--extra", "x" * 33),
    ),
    Call(
        "extra not a str",
        TASK_GET_CODE,
        (RING,),
        {"extra": 26},
        InvalidInput,
        ("invalid extra 26", "must be a str (got int)"),
        None,
    ),
    Call(
        "extra with whitespace",
        TASK_GET_CODE,
        (RING,),
        {"extra": "a b"},
        InvalidInput,
        ("invalid extra 'a b'", "character ' ' is not allowed"),
        (RING, "--extra", "a b"),
    ),
    Call(
        "extra non-ASCII",
        TASK_GET_CODE,
        (RING,),
        {"extra": "café"},
        InvalidInput,
        ("invalid extra 'café'", "character 'é' is not allowed"),
        (RING, "--extra", "café"),
    ),
    Call(
        "extra of alphabet characters only",
        TASK_GET_CODE,
        (RING,),
        {"extra": "X"},
        ExtraConflict,
        ("extra 'X' is refused on ring 'one'", "same codes as extra ''"),
        (RING, "--extra", "X"),
        in_caller=False,
    ),
    Call(
        "extra extending a used extra",
        TASK_GET_CODES,
        (RING, 2),
        {"extra": "hi26"},
        ExtraConflict,
        ("extra 'hi26' is refused on ring 'one'", "same codes as extra 'hi'"),
        (RING, "-n", "2", "--extra", "hi26"),
        in_caller=False,
    ),
    Call(
        "count 0",
        TASK_GET_CODES,
        (RING, 0),
        {},
        InvalidInput,
        ("invalid count 0", "from 1 to 10000"),
        (RING, "-n", "0"),
    ),
    Call(
        "count -1",
        TASK_GET_CODES,
        (RING, -1),
        {},
        InvalidInput,
        ("invalid count -1", "from 1 to 10000"),
        (RING, "-n", "-1"),
    ),
    Call(
        "count 10**6",
        TASK_GET_CODES,
        (RING, 10**6),
        {},
        InvalidInput,
        ("invalid count 1000000", "from 1 to 10000"),
        (RING, "-n", "1000000"),
    ),
    Call(
        "count True",
        TASK_GET_CODES,
        (RING, True),
        {},
        InvalidInput,
        ("invalid count True", "must be an int", "got bool"),
        None,
    ),
    Call(
        "count '5'",
        TASK_GET_CODES,
        (RING, "5"),
        {},
        InvalidInput,
        ("invalid count '5'", "must be an int", "got str"),
        # The command line parses -n itself: a non-number is a usage error.
        (RING, "-n", "five"),
        ("'five' is not a valid integer", "-n"),
        2,
    ),
    Call(
        "bump 'yes'",
        TASK_GET_CODE,
        (RING,),
        {"bump": "yes"},
        InvalidInput,
        ("invalid bump 'yes'", "must be True or False"),
        # --bump is a flag: a value after it is refused by name.
        (RING, "--bump", "yes"),
        ("unexpected extra argument (yes)",),
        2,
    ),
]


@dataclass(frozen=True)
class RingsFile:
    """A bad rings file and the texts its error must show (besides the file's path)."""

    item: str
    body: str
    shown: tuple[str, ...]


RINGS_FILES = [
    RingsFile(
        "base_length 0",
        "[rings.one]\nbase_length = 0\n",
        ("ring 'one'", "key 'base_length' must be from 1 to 8, got 0"),
    ),
    RingsFile(
        "base_length 9",
        "[rings.one]\nbase_length = 9\n",
        ("ring 'one'", "key 'base_length' must be from 1 to 8, got 9"),
    ),
    RingsFile(
        'base_length "4"',
        '[rings.one]\nbase_length = "4"\n',
        ("ring 'one'", "key 'base_length' must be int, got '4'"),
    ),
    RingsFile(
        "base_length true",
        "[rings.one]\nbase_length = true\n",
        ("ring 'one'", "key 'base_length' must be int, got True"),
    ),
    RingsFile(
        "pool_size 20,000",
        "[rings.one]\npool_size = 20000\n",
        ("ring 'one'", "key 'pool_size' must be from 0 to 10,000", "got 20000"),
    ),
    RingsFile(
        "unknown key",
        "[rings.one]\npool = 8\n",
        ("ring 'one'", "unknown key 'pool'", "allowed: base_length, profanity_filter, pool_size"),
    ),
    RingsFile(
        "invalid ring name",
        "[rings.One]\n",
        ("invalid ring name 'One'",),
    ),
    RingsFile(
        "duplicate ring tables",
        "[rings.one]\nbase_length = 1\n\n[rings.one]\nbase_length = 2\n",
        ("invalid TOML", "Cannot declare ('rings', 'one') twice", "line 4"),
    ),
    RingsFile(
        "invalid TOML",
        "[rings.one\nbase_length = 1\n",
        ("invalid TOML", "Expected ']'", "line 1"),
    ),
]


#: The commands that read the rings file (``get`` without --direct: the caller's check).
READERS = [
    ["status"],
    ["populate"],
    ["get", RING, "--direct"],
    ["get", RING, "--timeout", "5"],
    ["reset", RING, "--yes"],
    ["worker", RING],
]
