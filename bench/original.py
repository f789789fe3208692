"""The benchmark's baseline: statement for statement, the SQL that the Elixir library
CoderRing 0.2.3 (https://github.com/instinctscience/coder_ring, dfa3e66) sends to fill a
ring and to issue codes through ``CoderRing.GenRing`` (its memo kept in memory) with no
options, flaws kept on purpose (no index on ``(name, position)``, the draw and the memo
update in two transactions). Sources: ``lib/coder_ring/migration.ex``, ``code.ex`` and
``memo.ex`` (columns, defaults), ``lib/coder_ring.ex`` (``populate/2``,
``insert_chunks/2``, ``codes_stream/1``, ``invoke/2`` with ``{:get_code, []}``,
``get_max/1``, ``integer_to_string/1``). Its tables get a prefix."""

from __future__ import annotations

import random
import re
from collections.abc import Iterator

from sqlalchemy import Connection, Engine, text

#: The original's ``@chars``, in its shuffled order: which code sits at which position.
CHARS: tuple[str, ...] = tuple("VSE293AH7Q6R4BT5CLXGJZFPDWUKYM8N")
#: The original's ``@chunk_count``: rows per literal INSERT.
CHUNK_COUNT = 100_000
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def integer_to_string(num: int) -> str:
    """``integer_to_string/1``: ``Integer.to_string(num, 32)`` (digits ``0-9A-V``), then
    ``0``->``X``, ``1``->``W``, ``I``->``Y``, ``O``->``Z``."""
    digits = ""
    while True:
        num, rem = divmod(num, 32)
        digits = "0123456789ABCDEFGHIJKLMNOPQRSTUV"[rem] + digits
        if num == 0:
            return digits.translate(str.maketrans("01IO", "XWYZ"))


def codes_stream(base_length: int) -> Iterator[str]:
    """``codes_stream/1``: each number below 32**base_length as its base-32 digits, most
    significant first, each mapped through the shuffled :data:`CHARS`."""
    for num in range(32**base_length):
        yield "".join(CHARS[num // 32**char % 32] for char in range(base_length - 1, -1, -1))


class OriginalReplay:
    """The original's statements for ring ``name`` (its atom, as a string) of
    ``base_length`` 1 to 4 (its limit) on ``engine``; positions picked by a
    ``random.Random(seed)`` (the original's ``Enum.random/1``)."""

    def __init__(self, engine: Engine, prefix: str, name: str, base_length: int, seed: int) -> None:
        # The original inlines the name unescaped into the fill's SQL: only names for
        # which that is safe (as the Elixir atoms used as ring names are).
        if not _IDENT.match(prefix + name) or base_length not in range(1, 5):
            raise ValueError(f"bad ring for the original: {prefix!r}, {name!r}, {base_length}")
        self.engine, self.name, self.base_length = engine, name, base_length
        self.memos, self.codes = f"{prefix}code_memos", f"{prefix}codes"
        self._rng = random.Random(seed)
        self._memo: dict[str, int] = {}  # uniquizer_num, last_max_pos; extra stays ""

    def create_schema(self) -> None:
        """The two tables of ``migration.ex``, and nothing more: Ecto's ``id`` primary
        key, ``varchar(255)`` strings, a foreign key with no index, and NO index on
        ``(name, position)``: every draw scans the table, as the original's does."""
        id_column = "id INTEGER PRIMARY KEY AUTOINCREMENT"  # ecto_sqlite3's
        if self.engine.dialect.name == "postgresql":
            id_column = "id bigserial PRIMARY KEY"
        memos = (
            f"CREATE TABLE {self.memos} (name varchar(255) PRIMARY KEY, uniquizer_num "
            "integer NOT NULL DEFAULT 0, extra varchar(255) NOT NULL DEFAULT '', "
            "last_max_pos integer)"
        )
        codes = (
            f"CREATE TABLE {self.codes} ({id_column}, position integer NOT NULL, "
            f"name varchar(255) NOT NULL CONSTRAINT {self.codes}_name_fkey "
            f"REFERENCES {self.memos}(name), value varchar(255) NOT NULL)"
        )
        with self.engine.begin() as conn:
            conn.execute(text(memos))
            conn.execute(text(codes))

    def drop_schema(self) -> None:
        """Drop both tables if they exist."""
        with self.engine.begin() as conn:
            conn.execute(text(f"DROP TABLE IF EXISTS {self.codes}"))
            conn.execute(text(f"DROP TABLE IF EXISTS {self.memos}"))

    def fill(self) -> None:
        """``populate/2``: insert the memo (every field, ``Memo.new``'s defaults); one
        literal multi-VALUES INSERT per :data:`CHUNK_COUNT` codes, built by prepending
        (so in descending positions); then the memo's ``last_max_pos``. Since 0.2.3 each
        statement commits on its own ("no longer done inside a transaction")."""
        memo = {"name": self.name, "extra": "", "uniquizer_num": 0, "last_max_pos": 0}
        insert = (
            f"INSERT INTO {self.memos} (name, extra, uniquizer_num, last_max_pos) "
            "VALUES (:name, :extra, :uniquizer_num, :last_max_pos)"
        )
        with self.engine.begin() as conn:
            conn.execute(text(insert), memo)
        engine = self.engine.execution_options(compiled_cache=None)  # each text is unique
        count, chunk = 0, []
        for code in codes_stream(self.base_length):
            chunk.append(f"('{self.name}', {count}, '{code}')")
            count += 1
            if len(chunk) == CHUNK_COUNT or count == 32**self.base_length:
                sql = f"INSERT INTO {self.codes} (name, position, value) VALUES "
                with engine.begin() as conn:  # repo.query!(sql, [])
                    conn.execute(text(sql + ",".join(reversed(chunk))))
                chunk = []
        with self.engine.begin() as conn:
            update = f"UPDATE {self.memos} SET last_max_pos = :last_max_pos WHERE name = :name"
            conn.execute(text(update), {"last_max_pos": count, "name": self.name})
        self._memo = {"uniquizer_num": 0, "last_max_pos": count}

    def _select_code(self, conn: Connection, position: int) -> tuple[int, int, str]:
        """``repo.one!(from Code, where: [name: ..., position: ...])``: a full scan."""
        query = (
            f"SELECT c0.id, c0.name, c0.position, c0.value FROM {self.codes} AS c0 "
            "WHERE ((c0.name = :name) AND (c0.position = :position))"
        )
        row = conn.execute(text(query), {"name": self.name, "position": position}).one()
        return int(row[0]), int(row[2]), str(row[3])

    def draw(self) -> str:
        """One code, as ``invoke(ring, {:get_code, []})`` issues it. Transaction 1:
        ``get_max`` selects the row at ``last_max_pos - 1`` (at 0: counts the codes and
        wraps to the last, with the next uniquizer); picks ``r_pos`` in
        ``0..max.position``; selects that row; swaps the two values by ``id`` (no UPDATE
        when equal: Ecto skips an empty changeset). Transaction 2: the memo's changed
        fields. A crash between the two issues the same code again: kept on purpose."""
        memo = self._memo
        if not memo:
            raise LookupError(f"ring {self.name!r} has no memo: fill() it first")
        uniquizer_num, wanted = memo["uniquizer_num"], memo["last_max_pos"] - 1
        with self.engine.begin() as conn:
            if memo["last_max_pos"] == 0:
                count = conn.execute(
                    text(f"SELECT count(*) FROM {self.codes} AS c0 WHERE (c0.name = :name)"),
                    {"name": self.name},
                ).scalar_one()
                uniquizer_num, wanted = uniquizer_num + 1, int(count) - 1
            max_id, max_pos, max_value = self._select_code(conn, wanted)
            r_id, _, r_value = self._select_code(conn, self._rng.randint(0, max_pos))
            if r_value != max_value:
                update = text(f"UPDATE {self.codes} SET value = :value WHERE id = :id")
                conn.execute(update, {"value": max_value, "id": r_id})
                conn.execute(update, {"value": r_value, "id": max_id})
        self._memo = {"uniquizer_num": uniquizer_num, "last_max_pos": max_pos}
        # Memo.changeset |> repo.update!(): only the fields that changed are sent.
        if changes := {key: value for key, value in self._memo.items() if memo[key] != value}:
            sets = ", ".join(f"{key} = :{key}" for key in changes)
            with self.engine.begin() as conn:
                update = text(f"UPDATE {self.memos} SET {sets} WHERE name = :name")
                conn.execute(update, {**changes, "name": self.name})
        return ("" if uniquizer_num == 0 else integer_to_string(uniquizer_num - 1)) + r_value
