"""Faithful replay of the SQL issued by the Elixir library CoderRing 0.2.3.

This module is a benchmark baseline only: it reproduces, statement for statement, what the
original library (https://github.com/instinctscience/coder_ring, tag/commit "0.2.3",
dfa3e66) sends to the database, so that our own implementation can be compared with it on
the same machine. It is *not* a usable code service: it keeps every flaw of the original on
purpose (no index on ``(name, position)``, draw and state update in two transactions, a
fill that is not crash-safe).

Sources followed (paths in the original repository):

* ``lib/coder_ring/migration.ex``: the two tables, ``code_memos`` and ``codes``.
* ``lib/coder_ring/code.ex`` and ``lib/coder_ring/memo.ex``: the Ecto schemas (column
  order of the SELECTs, defaults of a new memo).
* ``lib/coder_ring.ex``: ``populate/2``, ``insert_chunks/2``, ``codes_stream/1`` (the
  fill) and ``invoke/2`` with ``{:get_code, opts}``, ``get_max/1``, ``code_count/1``,
  ``reset_memo_change/2``, ``integer_to_string/1`` (the draw).
* ``lib/coder_ring/gen_ring.ex``: the GenServer wrapper that keeps the memo in memory
  between draws (the default here); the plain ``use CoderRing`` ``call/2`` reloads the memo
  before every draw (``reload_memo=True`` here).

Table names get a prefix (default ``original_``) so they never collide with ours.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

from sqlalchemy import Connection, Engine, text

__all__ = ["ALPHABET", "CHARS", "CHUNK_COUNT", "Memo", "OriginalReplay"]

#: The original's ``@chars`` (lib/coder_ring.ex), in the original's (shuffled) order. The
#: order matters: it decides which code string sits at which position after the fill.
CHARS: tuple[str, ...] = tuple("VSE293AH7Q6R4BT5CLXGJZFPDWUKYM8N")

#: The same 32 characters in sorted order: ``2``-``9`` and ``A``-``Z`` without ``I``, ``O``.
ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"

#: The original's ``@chunk_count`` (lib/coder_ring.ex): rows per literal INSERT.
CHUNK_COUNT = 100_000

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_UNIQUIZER_MAP = str.maketrans({"0": "X", "1": "W", "I": "Y", "O": "Z"})
_DIGITS32 = "0123456789ABCDEFGHIJKLMNOPQRSTUV"


@dataclass(frozen=True)
class Memo:
    """A row of ``code_memos`` (lib/coder_ring/memo.ex): the state of one ring."""

    name: str
    extra: str
    uniquizer_num: int
    last_max_pos: int


def integer_to_string(num: int) -> str:
    """Render ``num`` as the uniquizer string, like the original's ``integer_to_string/1``.

    ``Integer.to_string(num, 32)`` (digits ``0-9A-V``), then ``0``->``X``, ``1``->``W``,
    ``I``->``Y``, ``O``->``Z``.
    """
    if num < 0:
        raise ValueError(f"uniquizer number must be >= 0, got {num}")
    digits = ""
    while True:
        num, rem = divmod(num, 32)
        digits = _DIGITS32[rem] + digits
        if num == 0:
            break
    return digits.translate(_UNIQUIZER_MAP)


def codes_stream(base_length: int) -> Iterator[str]:
    """Yield every base code in the original's order (``codes_stream/1``).

    Number ``num`` (0 .. 32**base_length - 1) becomes its base-32 digits, most significant
    first, each digit mapped through the original's shuffled ``@chars``.
    """
    base = len(CHARS)
    for num in range(base**base_length):
        out = ""
        rem = num
        for char in range(base_length - 1, -1, -1):
            char_val = base**char
            val = rem // char_val
            rem -= val * char_val
            out += CHARS[val]
        yield out


class OriginalReplay:
    """Replays CoderRing 0.2.3's statements for one ring against a SQLAlchemy engine.

    Args:
        engine: Where to run (PostgreSQL via psycopg 3, or SQLite).
        prefix: Prepended to the original table names ``code_memos`` and ``codes``.
        name: The ring name (the original's ring atom, stored as a string).
        base_length: Characters per base code, 1 to 4 (the original's limit).
        reload_memo: ``False`` (default) keeps the memo in memory between draws like
            ``CoderRing.GenRing``; ``True`` re-selects it before every draw like the plain
            ``use CoderRing`` ``call/2``.
        seed: Seed for the position picks (the original uses ``Enum.random/1``).
    """

    def __init__(
        self,
        engine: Engine,
        prefix: str = "original_",
        name: str = "widget",
        base_length: int = 4,
        *,
        reload_memo: bool = False,
        seed: int | None = None,
    ) -> None:
        if not (prefix == "" or _IDENT.match(prefix)):
            raise ValueError(f"prefix must be a plain SQL identifier part, got {prefix!r}")
        # The original inlines the name unescaped into the fill's SQL text; we only accept
        # names for which that is safe (Elixir atoms used as ring names are like this).
        if not _IDENT.match(name):
            raise ValueError(f"ring name must match {_IDENT.pattern}, got {name!r}")
        # lib/coder_ring.ex new/1: `base_length in 1..4 || raise ...`
        if base_length not in range(1, 5):
            raise ValueError(f"base_length must be 1 to 4, got {base_length}")
        self.engine = engine
        self.prefix = prefix
        self.name = name
        self.base_length = base_length
        self.reload_memo = reload_memo
        self.memos_table = f"{prefix}code_memos"
        self.codes_table = f"{prefix}codes"
        self._rng = random.Random(seed)
        self._memo: Memo | None = None

    # ------------------------------------------------------------------ schema

    def create_schema(self) -> None:
        """Create the two tables of ``lib/coder_ring/migration.ex``, and nothing more.

        Ecto's ``create table(:codes)`` adds ``id bigserial PRIMARY KEY``; ``:string`` is
        ``varchar(255)``; ``references(...)`` is a foreign key with no index. In particular
        there is NO index on ``(name, position)``: every draw scans the table, as in the
        original.
        """
        memos, codes = self.memos_table, self.codes_table
        if self.engine.dialect.name == "postgresql":
            id_col = "id bigserial PRIMARY KEY"
        else:  # ecto_sqlite3 style
            id_col = "id INTEGER PRIMARY KEY AUTOINCREMENT"
        with self.engine.begin() as conn:
            conn.execute(
                text(
                    f"CREATE TABLE {memos} ("
                    "name varchar(255) PRIMARY KEY, "
                    "uniquizer_num integer NOT NULL DEFAULT 0, "
                    "extra varchar(255) NOT NULL DEFAULT '', "
                    "last_max_pos integer)"
                )
            )
            conn.execute(
                text(
                    f"CREATE TABLE {codes} ("
                    f"{id_col}, "
                    "position integer NOT NULL, "
                    f"name varchar(255) NOT NULL CONSTRAINT {codes}_name_fkey "
                    f"REFERENCES {memos}(name), "
                    "value varchar(255) NOT NULL)"
                )
            )

    def drop_schema(self) -> None:
        """Drop both tables if they exist (codes first: it references the memos)."""
        with self.engine.begin() as conn:
            conn.execute(text(f"DROP TABLE IF EXISTS {self.codes_table}"))
            conn.execute(text(f"DROP TABLE IF EXISTS {self.memos_table}"))
        self._memo = None

    # ------------------------------------------------------------------ fill

    def fill(self, progress: Callable[[int, int], None] | None = None) -> int:
        """Populate the ring like ``populate/2`` + ``insert_chunks/2`` (lib/coder_ring.ex).

        1. ``INSERT`` the memo row (``Memo.new`` defaults: extra '', uniquizer_num 0,
           last_max_pos 0).
        2. One literal multi-VALUES ``INSERT`` per chunk of ``CHUNK_COUNT`` codes, values
           inlined in the SQL text. The original builds each chunk's text by prepending,
           so rows appear in descending position order within a statement; kept here.
        3. ``UPDATE`` the memo's ``last_max_pos`` to the number of codes.

        Since 0.2.3 none of this runs in one transaction (CHANGELOG: "Initial population is
        no longer done inside a transaction"): each statement commits on its own.

        Args:
            progress: Called after each chunk with (rows inserted so far, total rows).

        Returns:
            The number of code rows inserted.
        """
        total = 32**self.base_length
        memos, codes = self.memos_table, self.codes_table
        # repo.insert!(Memo.new(name: ...)): Ecto inserts every schema field.
        with self.engine.begin() as conn:
            conn.execute(
                text(
                    f"INSERT INTO {memos} (name, extra, uniquizer_num, last_max_pos) "
                    "VALUES (:name, :extra, :uniquizer_num, :last_max_pos)"
                ),
                {"name": self.name, "extra": "", "uniquizer_num": 0, "last_max_pos": 0},
            )

        count = 0
        chunk: list[str] = []
        # Each chunk's statement text is unique; do not fill the compiled cache with them.
        engine = self.engine.execution_options(compiled_cache=None)

        def flush() -> None:
            nonlocal count
            parts: list[str] = []
            for code in chunk:
                # "('#{name}', #{acc_count}, '#{code}')," <> acc  -- prepended
                parts.append(f"('{self.name}', {count}, '{code}')")
                count += 1
            parts.reverse()
            sql = f"INSERT INTO {codes} (name, position, value) VALUES " + ",".join(parts)
            # repo.query!(sql, []): one statement, committed on its own.
            with engine.begin() as conn:
                conn.execute(text(sql))
            chunk.clear()
            if progress is not None:
                progress(count, total)

        for code in codes_stream(self.base_length):
            chunk.append(code)
            if len(chunk) == CHUNK_COUNT:
                flush()
        if chunk:
            flush()

        # memo |> Memo.changeset(%{last_max_pos: count}) |> repo.update!()
        with self.engine.begin() as conn:
            conn.execute(
                text(f"UPDATE {memos} SET last_max_pos = :last_max_pos WHERE name = :name"),
                {"last_max_pos": count, "name": self.name},
            )
        self._memo = Memo(self.name, "", 0, count)
        return count

    # ------------------------------------------------------------------ draw

    def load_memo(self) -> Memo:
        """``get_memo/1``: select the ring's memo row (its own statement, no transaction)."""
        with self.engine.connect() as conn:
            row = conn.execute(
                text(
                    f"SELECT c0.name, c0.extra, c0.uniquizer_num, c0.last_max_pos "
                    f"FROM {self.memos_table} AS c0 WHERE (c0.name = :name)"
                ),
                {"name": self.name},
            ).one_or_none()
            conn.rollback()
        if row is None:
            raise LookupError(f"ring {self.name!r} has no memo: fill() it first")
        self._memo = Memo(str(row[0]), str(row[1]), int(row[2]), int(row[3]))
        return self._memo

    def _code_count(self, conn: Connection) -> int:
        """``code_count/1``: ``repo.aggregate(..., :count)`` over the ring's codes."""
        return int(
            conn.execute(
                text(f"SELECT count(*) FROM {self.codes_table} AS c0 WHERE (c0.name = :name)"),
                {"name": self.name},
            ).scalar_one()
        )

    def _select_code(self, conn: Connection, position: int) -> tuple[int, int, str]:
        """``repo.one!(from Code, where: [name: ..., position: ...])``: a full scan here."""
        row = conn.execute(
            text(
                f"SELECT c0.id, c0.name, c0.position, c0.value FROM {self.codes_table} AS c0 "
                "WHERE ((c0.name = :name) AND (c0.position = :position))"
            ),
            {"name": self.name, "position": position},
        ).one()
        return int(row[0]), int(row[2]), str(row[3])

    def draw(self, extra: str = "", *, bump: bool = False) -> str:
        """Issue one code exactly as ``invoke(ring, {:get_code, opts})`` does.

        Statements, in order (lib/coder_ring.ex):

        * (``reload_memo`` only) ``SELECT`` the memo, outside any transaction.
        * (new ``extra`` or ``bump`` only) ``reset_memo_change``: ``SELECT count(*)``.
        * Transaction 1 (``repo.transaction``): ``get_max`` selects the row at position
          ``last_max_pos - 1`` (or, when ``last_max_pos`` is 0, counts the codes and wraps
          to ``count - 1`` with the next uniquizer); picks ``r_pos`` uniformly in
          ``0..max.position``; selects that row; ``UPDATE`` r's value to max's and max's
          value to r's, each by ``id`` (Ecto skips an update with no change, so when
          ``r_pos == max.position`` no UPDATE is sent).
        * Transaction 2 (a lone ``repo.update!``): ``UPDATE`` the memo's changed fields.

        A crash between the two transactions issues the same code again: kept on purpose.

        Returns:
            ``extra + uniquizer + base``.
        """
        memo = self._memo
        if self.reload_memo or memo is None:
            memo = self.load_memo()
        codes = self.codes_table

        # memo_cs: the memo with the changes the caller's options imply.
        start = memo
        if extra != memo.extra or bump:
            # reset_memo_change(ring[, memo.uniquizer_num + 1]): count outside the transaction.
            with self.engine.connect() as conn:
                lmp = self._code_count(conn)
                conn.rollback()
            # A new extra starts the cycle over (uniquizer 0); same extra + bump: next one.
            unum = 0 if extra != memo.extra else memo.uniquizer_num + 1
            start = replace(memo, uniquizer_num=unum, last_max_pos=lmp)

        with self.engine.begin() as conn:
            # get_max/1
            if start.last_max_pos == 0:
                max_pos_wanted = self._code_count(conn) - 1
                uniquizer_num = start.uniquizer_num + 1
            else:
                max_pos_wanted = start.last_max_pos - 1
                uniquizer_num = start.uniquizer_num
            max_id, max_pos, max_value = self._select_code(conn, max_pos_wanted)

            r_pos = self._rng.randint(0, max_pos)  # Enum.random(0..max.position)
            r_id, _r_pos, r_value = self._select_code(conn, r_pos)

            update = text(f"UPDATE {codes} SET value = :value WHERE id = :id")
            if r_value != max_value:  # Ecto sends no UPDATE for an empty changeset
                conn.execute(update, {"value": max_value, "id": r_id})
                conn.execute(update, {"value": r_value, "id": max_id})
            base = r_value

        uniquizer = "" if uniquizer_num == 0 else integer_to_string(uniquizer_num - 1)
        code = f"{extra}{uniquizer}{base}"

        # memo_cs |> Memo.changeset(args) |> repo.update!(): only fields that differ from
        # the loaded memo are sent, in their own (second) transaction.
        new_memo = replace(start, extra=extra, uniquizer_num=uniquizer_num, last_max_pos=max_pos)
        changes = {
            field: getattr(new_memo, field)
            for field in ("extra", "uniquizer_num", "last_max_pos")
            if getattr(new_memo, field) != getattr(memo, field)
        }
        if changes:
            sets = ", ".join(f"{field} = :{field}" for field in changes)
            with self.engine.begin() as conn:
                conn.execute(
                    text(f"UPDATE {self.memos_table} SET {sets} WHERE name = :name"),
                    {**changes, "name": self.name},
                )
        self._memo = new_memo
        return code
