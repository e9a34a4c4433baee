"""Human votes on side-by-side chat turns, kept in one SQLite file, and their export as preference pairs.

Why SQLite through the standard library: one file, transactions, and crash safety without a server. The file is
opened in WAL mode with synchronous=FULL, and `VoteStore.record` returns only after its transaction committed,
so a vote the page acknowledged survives a SIGKILL of the app. Writes go through one lock per store (and
SQLite's own file lock between processes). The schema carries a version (table `schema_version`) and grows by
the ordered `MIGRATIONS`; a file that is not ours (corrupt, foreign, or from a newer peo) is refused with a
`VotesError`, never replaced.

Exported pairs (`export_pairs`, `python -m peo votes export`): TRL's conversational prompt/chosen/rejected rows,
the voted-best answer against each other answer of the same turn. The prompt is the winning column's
conversation up to the turn's user message (each column keeps its own history). Votes for "tie" or "all bad",
pairs whose two answers are the same text, and pairs with an empty answer are dropped and counted.

A vote's point is over the run's aspects (`Vote.aspects`, from the assets' meta.json). With the default two it
fills the columns lambda_help, phi_help, phi_harm, c_help, c_harm as it always did (and `point` stays NULL). Over
other aspects the whole point (Aspects.point_columns and coefficient_columns, in the aspects' order) is stored as
JSON in `point` (schema 3, which older files get by migration), and the old NOT NULL columns hold help's and harm's
coordinates where the run has them, else 0. `VoteStore.votes` gives every row's point as a dict either way.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from peo.aspects import DEFAULT_ASPECTS, Aspects
from peo.atomic import write_with
from peo.coefficients import model_id as model_id_of
from peo.errors import PeoError
from peo.evaluation_stats import wilson_interval


class VotesError(PeoError, RuntimeError):
    """The votes database cannot be used (corrupt, foreign, newer, outside its folder) or a vote is malformed."""


VOTES_DIR_ENV = "PEO_VOTES_DIR"  # the data folder; `--votes-dir` sets it
DEFAULT_VOTES_DIR = Path("data") / "votes"  # under the repository root (git-ignored)
SPACE_VOTES_DIR = Path("/data/peo-votes")  # a Hugging Face Space's persistent storage, where it is mounted
DB_FILE = "votes.sqlite3"
APPLICATION_ID = 0x50454F56  # "PEOV" in the file header: tells our database from any other SQLite file

TIE, ALL_BAD = "tie", "all_bad"  # the two choices that name no column
CHOICES_WITHOUT_WINNER = (TIE, ALL_BAD)
MAX_COMMENT_CHARS = 500
MAX_TEXT_CHARS = 20_000  # one answer or one message
MAX_MESSAGES = 200  # messages in one column's conversation
MAX_SESSION_CHARS = 64
_SESSION_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_DB_NAME_RE = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,99}\.sqlite3$")

# Each entry moves the schema one version up (entry i: version i → i + 1), in its own transaction.
MIGRATIONS: list[tuple[str, ...]] = [
    (  # 1: votes and the answers of each vote's turn
        """CREATE TABLE votes (
            id INTEGER PRIMARY KEY,
            created_at TEXT NOT NULL,
            session_id TEXT NOT NULL CHECK (length(session_id) BETWEEN 1 AND 64),
            turn INTEGER NOT NULL CHECK (turn >= 1),
            lambda_help REAL NOT NULL, phi_help REAL NOT NULL, phi_harm REAL NOT NULL,
            c_help REAL NOT NULL, c_harm REAL NOT NULL,
            model_id TEXT NOT NULL CHECK (length(model_id) <= 64),
            choice TEXT NOT NULL CHECK (length(choice) <= 16),
            comment TEXT NOT NULL DEFAULT '' CHECK (length(comment) <= 500),
            settings TEXT NOT NULL CHECK (length(settings) <= 2000),
            seed INTEGER NOT NULL,
            blind_order TEXT CHECK (blind_order IS NULL OR length(blind_order) <= 500),
            UNIQUE (session_id, turn))""",
        """CREATE TABLE vote_columns (
            vote_id INTEGER NOT NULL REFERENCES votes(id),
            position INTEGER NOT NULL,
            column_key TEXT NOT NULL CHECK (length(column_key) <= 16),
            label TEXT NOT NULL CHECK (length(label) <= 100),
            blind_label TEXT CHECK (blind_label IS NULL OR length(blind_label) <= 4),
            scales TEXT NOT NULL CHECK (length(scales) <= 500),
            answer TEXT NOT NULL CHECK (length(answer) <= 20000),
            reward REAL, cost REAL,
            loops INTEGER NOT NULL,
            conversation TEXT NOT NULL CHECK (length(conversation) <= 5000000),
            PRIMARY KEY (vote_id, column_key))""",
    ),
    (  # 2: which assets a vote was cast on (a column's model differs between asset sets), and indexes
        "ALTER TABLE votes ADD COLUMN assets TEXT NOT NULL DEFAULT '' CHECK (length(assets) <= 200)",
        "CREATE INDEX vote_columns_column ON vote_columns (column_key)",
    ),
    (  # 3: the whole point of a vote over other aspects than help and harm (JSON; NULL for the default two)
        "ALTER TABLE votes ADD COLUMN point TEXT CHECK (point IS NULL OR length(point) <= 2000)",
    ),
]
LEGACY_POINT_COLUMNS: tuple[str, ...] = (*DEFAULT_ASPECTS.point_columns, *DEFAULT_ASPECTS.coefficient_columns)
SCHEMA_VERSION = len(MIGRATIONS)


def votes_dir(flag: str | Path | None = None) -> Path:
    """The data folder: the flag, else $PEO_VOTES_DIR, else a Space's /data (when mounted), else data/votes/."""
    if flag:
        return Path(flag).expanduser()
    if os.environ.get(VOTES_DIR_ENV):
        return Path(os.environ[VOTES_DIR_ENV]).expanduser()
    if os.environ.get("SPACE_ID") and SPACE_VOTES_DIR.parent.is_dir():
        return SPACE_VOTES_DIR
    from peo.project_root import project_root

    return project_root() / DEFAULT_VOTES_DIR


def database_path(folder: str | Path, name: str = DB_FILE) -> Path:
    """The database file inside `folder`; a name with a path in it, or a link leading out, is refused."""
    if not isinstance(name, str) or not _DB_NAME_RE.match(name) or ".." in name:
        raise VotesError(f"votes database name {name!r}: expected a plain file name ending in .sqlite3")
    root = Path(folder).expanduser().resolve()
    path = (root / name).resolve()
    if path.parent != root:
        raise VotesError(f"votes database {root / name} leads outside its data folder {root}; "
                         "use a plain file, not a link")
    return path


# ---------------------------------------------------------------- what one vote holds


@dataclass(frozen=True)
class ColumnAnswer:
    """One column of a voted turn: which model (name and adapter scales), its conversation, answer and scores."""

    column: str
    scales: dict[str, float]
    answer: str
    conversation: list[dict[str, str]]  # the column's messages up to and including this answer
    reward: float | None = None
    cost: float | None = None
    loops: bool = False
    blind_label: str | None = None  # "A", "B", … when the turn was shown blind

    @property
    def label(self) -> str:
        """The column's label with the default aspects (label_in for a run's own)."""
        return DEFAULT_ASPECTS.chat_columns[self.column]

    def label_in(self, aspects: Aspects) -> str:
        return aspects.chat_columns[self.column]


@dataclass(frozen=True)
class Vote:
    """A judgement of one turn, with the state needed to use it later (point, settings, every answer)."""

    session_id: str
    turn: int
    point: dict[str, float]  # the aspects' point and coefficient columns (lambda_help, phi_help, phi_harm, c_help …)
    columns: tuple[ColumnAnswer, ...]  # in display order (the blind order when blind)
    choice: str  # a column of `columns`, TIE or ALL_BAD
    settings: dict[str, Any]  # the generation settings, seed included
    comment: str = ""
    blind: bool = False
    assets: str = ""
    created_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="milliseconds"))
    aspects: Aspects = DEFAULT_ASPECTS  # the run's (meta.json): which columns `point` holds and which chat columns

    @property
    def blind_order(self) -> list[str] | None:
        return [c.column for c in self.columns] if self.blind else None

    @property
    def point_keys(self) -> tuple[str, ...]:
        return (*self.aspects.point_columns, *self.aspects.coefficient_columns)

    @property
    def coefficients(self) -> tuple[float, ...]:
        return tuple(float(self.point[col]) for col in self.aspects.coefficient_columns)

    @property
    def point_json(self) -> str | None:
        """The `point` column: the whole point as JSON, or None with the default aspects (their columns hold it)."""
        if self.aspects == DEFAULT_ASPECTS:
            return None
        return json.dumps({k: float(self.point[k]) for k in self.point_keys})


def _text(value: Any, what: str, limit: int) -> str:
    if not isinstance(value, str):
        raise VotesError(f"{what}: expected text, got {type(value).__name__}")
    if len(value) > limit:
        raise VotesError(f"{what} has {len(value)} characters; the limit is {limit}")
    return value


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise VotesError(f"{what}: expected a number, got {value!r}")
    return float(value)


def check_vote(vote: Vote) -> None:
    """VotesError naming the field for a vote that must not be stored (bad choice, over-long text, …)."""
    if not isinstance(vote.session_id, str) or not _SESSION_RE.match(vote.session_id):
        raise VotesError(f"session id: expected 1–{MAX_SESSION_CHARS} letters, digits, - or _")
    if isinstance(vote.turn, bool) or not isinstance(vote.turn, int) or vote.turn < 1:
        raise VotesError(f"turn: expected a whole number >= 1, got {vote.turn!r}")
    for key in vote.point_keys:
        _number(vote.point.get(key), f"point {key}")
    if vote.point_json is not None and len(vote.point_json) > 2000:
        raise VotesError("the point has too many coordinates to store")
    if not vote.columns:
        raise VotesError("a vote needs the answers of at least one column")
    keys = [c.column for c in vote.columns]
    chat_columns = vote.aspects.chat_columns
    if len(set(keys)) != len(keys) or any(k not in chat_columns for k in keys):
        raise VotesError(f"columns {keys}: expected distinct columns from {', '.join(chat_columns)}")
    if vote.choice not in (*keys, *CHOICES_WITHOUT_WINNER):
        raise VotesError(f"choice {str(vote.choice)[:20]!r}: expected one of {', '.join(keys)}, {TIE} or {ALL_BAD}")
    _text(vote.comment, "comment", MAX_COMMENT_CHARS)
    _text(vote.assets, "assets", 200)
    for c in vote.columns:
        _text(c.answer, f"answer of {c.column}", MAX_TEXT_CHARS)
        if len(c.conversation) > MAX_MESSAGES:
            raise VotesError(f"conversation of {c.column} has {len(c.conversation)} messages; the limit is "
                             f"{MAX_MESSAGES}")
        for i, m in enumerate(c.conversation):
            if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant"):
                raise VotesError(f"conversation of {c.column}, message {i}: expected {{role, content}}")
            _text(m.get("content"), f"conversation of {c.column}, message {i}", MAX_TEXT_CHARS)
        for adapter, scale in c.scales.items():
            _number(scale, f"scale of {adapter} in {c.column}")
        for name in ("reward", "cost"):
            if getattr(c, name) is not None:
                _number(getattr(c, name), f"{name} of {c.column}")
    if vote.blind and any(c.blind_label is None for c in vote.columns):
        raise VotesError("a blind vote needs the blind label of every column")
    if len(json.dumps(vote.settings)) > 2000:
        raise VotesError("generation settings are too long to store")
    seed = vote.settings.get("seed")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise VotesError(f"settings seed: expected a whole number, got {seed!r}")


# ---------------------------------------------------------------- the store


class VoteStore:
    """The votes database of one data folder. Safe to share between threads; close() when done."""

    def __init__(self, folder: str | Path | None = None, *, name: str = DB_FILE, create: bool = True) -> None:
        folder = votes_dir(folder)
        if create:
            try:
                Path(folder).mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise VotesError(f"votes folder {folder}: cannot create it ({err.strerror})") from None
        self.path = database_path(folder, name)
        self._lock = threading.Lock()
        if not create and not self.path.is_file():
            raise VotesError(f"no votes database at {self.path}; give the folder the app stored votes in "
                             f"(--votes-dir or ${VOTES_DIR_ENV})")
        _check_header(self.path)
        try:
            self._conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as err:
            raise VotesError(f"votes database {self.path}: cannot open it ({err})") from None
        try:
            self._open()
        except sqlite3.DatabaseError as err:
            self._conn.close()
            raise VotesError(f"votes database {self.path} is corrupt or not a peo votes database ({err}); "
                             "move it away to start a new one") from None
        except VotesError:
            self._conn.close()
            raise

    def _open(self) -> None:
        conn = self._conn
        conn.execute("PRAGMA busy_timeout = 30000")
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if app_id != APPLICATION_ID and (app_id != 0 or tables):
            raise VotesError(f"{self.path} is an SQLite database of another program (application id {app_id}, "
                             f"tables {', '.join(sorted(tables)[:5]) or 'none'}); move it away or choose another "
                             "votes folder")
        check = conn.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            raise VotesError(f"votes database {self.path} is corrupt ({check[:200]}); move it away to start a new one")
        if conn.execute("PRAGMA journal_mode = WAL").fetchone()[0].lower() != "wal":
            raise VotesError(f"votes database {self.path}: WAL mode is not available on this file system")
        conn.execute("PRAGMA synchronous = FULL")  # a commit is on disk before record() returns
        conn.execute("PRAGMA foreign_keys = ON")
        migrate(conn)

    # -- writing

    def record(self, vote: Vote) -> tuple[int, bool]:
        """Store `vote` and commit; (its id, True) — or (the stored id, False) when this session already voted on
        this turn (a repeated click stores nothing twice)."""
        check_vote(vote)
        p = {k: vote.point.get(k, 0.0) for k in LEGACY_POINT_COLUMNS}  # the whole point with the default aspects
        with self._lock:
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                row = conn.execute("SELECT id FROM votes WHERE session_id = ? AND turn = ?",
                                   (vote.session_id, vote.turn)).fetchone()
                if row is not None:
                    conn.execute("ROLLBACK")
                    return row[0], False
                cur = conn.execute(
                    "INSERT INTO votes (created_at, session_id, turn, lambda_help, phi_help, phi_harm, c_help, "
                    "c_harm, model_id, choice, comment, settings, seed, blind_order, assets, point) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (vote.created_at, vote.session_id, vote.turn, p["lambda_help"], p["phi_help"], p["phi_harm"],
                     p["c_help"], p["c_harm"], model_id_of(*vote.coefficients), vote.choice, vote.comment,
                     json.dumps(vote.settings), vote.settings["seed"],
                     None if vote.blind_order is None else json.dumps(vote.blind_order), vote.assets,
                     vote.point_json))
                vote_id = cur.lastrowid
                conn.executemany(
                    "INSERT INTO vote_columns (vote_id, position, column_key, label, blind_label, scales, answer, "
                    "reward, cost, loops, conversation) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [(vote_id, i, c.column, c.label_in(vote.aspects), c.blind_label if vote.blind else None,
                      json.dumps(c.scales, sort_keys=True), c.answer, c.reward, c.cost, int(bool(c.loops)),
                      json.dumps(c.conversation, ensure_ascii=False)) for i, c in enumerate(vote.columns)])
                conn.execute("COMMIT")
            except sqlite3.IntegrityError as err:
                conn.execute("ROLLBACK")
                raise VotesError(f"vote not stored: {err}") from None
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        return vote_id, True

    # -- reading

    def count(self) -> int:
        with self._lock:
            return self._conn.execute("SELECT count(*) FROM votes").fetchone()[0]

    def schema_version(self) -> int:
        with self._lock:
            return current_version(self._conn)

    def votes(self) -> list[dict[str, Any]]:
        """Every vote with its columns (for export and tests), oldest first; not shown to app users. `point` is the
        vote's point as a dict (the stored JSON, or the default aspects' columns)."""
        with self._lock:
            conn = self._conn
            conn.row_factory = sqlite3.Row
            try:
                rows = [dict(r) for r in conn.execute("SELECT * FROM votes ORDER BY id")]
                cols = [dict(r) for r in conn.execute("SELECT * FROM vote_columns ORDER BY vote_id, position")]
            finally:
                conn.row_factory = None
        by_vote: dict[int, list[dict]] = {}
        for c in cols:
            c["scales"] = json.loads(c["scales"])
            c["conversation"] = json.loads(c["conversation"])
            c["loops"] = bool(c["loops"])
            by_vote.setdefault(c["vote_id"], []).append(c)
        for r in rows:
            r["settings"] = json.loads(r["settings"])
            r["blind_order"] = None if r["blind_order"] is None else json.loads(r["blind_order"])
            r["point"] = {k: r[k] for k in LEGACY_POINT_COLUMNS} if r["point"] is None else json.loads(r["point"])
            r["columns"] = by_vote.get(r["id"], [])
        return rows

    def aggregate(self) -> list[dict[str, Any]]:
        """Per model (a column at its adapter scales): turns it took part in, wins, ties, and its win share
        (wins + ½·ties over turns; an all-bad turn counts without a win) with a 95 % Wilson interval."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT c.column_key, c.scales, v.choice FROM vote_columns c JOIN votes v ON v.id = c.vote_id"
            ).fetchall()
        groups: dict[tuple[str, str], dict[str, Any]] = {}
        for column, scales, choice in rows:
            g = groups.setdefault((column, scales), {"column": column, "scales": json.loads(scales), "turns": 0,
                                                      "wins": 0, "ties": 0})
            g["turns"] += 1
            g["wins"] += choice == column
            g["ties"] += choice == TIE
        out = []
        for g in groups.values():
            share = (g["wins"] + 0.5 * g["ties"]) / g["turns"]
            lo, hi = wilson_interval(g["wins"] + 0.5 * g["ties"], g["turns"])
            out.append({**g, "win_share": share, "ci_low": lo, "ci_high": hi})
        # the default columns first, in their order; a run's own aspects' after, by name
        order = list(DEFAULT_ASPECTS.chat_columns)
        out.sort(key=lambda g: (order.index(g["column"]) if g["column"] in order else len(order), g["column"],
                                json.dumps(g["scales"], sort_keys=True)))
        return out

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> "VoteStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _check_header(path: Path) -> None:
    """Refuse a file that is not SQLite before sqlite3 sees it (an empty file is a new database: nothing to lose)."""
    if not path.exists():
        return
    if not path.is_file():
        raise VotesError(f"votes database {path} is not a file")
    with open(path, "rb") as handle:
        head = handle.read(16)
    if head and head != b"SQLite format 3\x00":
        raise VotesError(f"votes database {path} is not an SQLite file (corrupt or foreign); move it away to start "
                         "a new one")


def current_version(conn: sqlite3.Connection) -> int:
    exists = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'").fetchone()
    if not exists:
        return 0
    row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
    return row[0] or 0


def migrate(conn: sqlite3.Connection, upto: int = SCHEMA_VERSION) -> int:
    """Apply the migrations after the file's version, each in its own transaction; the version reached."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'schema_version'").fetchone():
            conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL, applied_at TEXT NOT NULL)")
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    version = current_version(conn)
    if version > SCHEMA_VERSION:
        raise VotesError(f"the votes database has schema version {version}, newer than this peo's "
                         f"{SCHEMA_VERSION}; update peo")
    while version < upto:
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = current_version(conn)  # another process may have migrated meanwhile
            if version < upto:
                for statement in MIGRATIONS[version]:
                    conn.execute(statement)
                version += 1
                conn.execute("INSERT INTO schema_version VALUES (?, ?)",
                             (version, datetime.now(timezone.utc).isoformat(timespec="seconds")))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return version


# ---------------------------------------------------------------- votes → preference pairs


@dataclass
class ExportSummary:
    votes: int = 0
    pairs: int = 0
    dropped: dict[str, int] = field(default_factory=dict)

    def drop(self, reason: str, n: int = 1) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + n


def vote_pairs(votes: list[dict[str, Any]], summary: ExportSummary | None = None) -> Iterator[dict[str, Any]]:
    """TRL conversational rows: for each vote naming a column, its answer (chosen) against each other answer."""
    summary = summary if summary is not None else ExportSummary()
    for vote in votes:
        summary.votes += 1
        if vote["choice"] in CHOICES_WITHOUT_WINNER:
            summary.drop(f"vote '{vote['choice']}' (no winner)")
            continue
        winner = next(c for c in vote["columns"] if c["column_key"] == vote["choice"])
        prompt = winner["conversation"][:-1]  # up to the turn's user message
        if not prompt or prompt[-1]["role"] != "user" or not winner["answer"].strip():
            summary.drop("winning answer empty or without its user message")
            continue
        for other in vote["columns"]:
            if other is winner:
                continue
            if not other["answer"].strip():
                summary.drop("other answer empty")
            elif other["answer"].strip() == winner["answer"].strip():
                summary.drop("other answer is the same text")
            else:
                summary.pairs += 1
                yield {"prompt": [{"role": m["role"], "content": m["content"]} for m in prompt],
                       "chosen": [{"role": "assistant", "content": winner["answer"]}],
                       "rejected": [{"role": "assistant", "content": other["answer"]}]}


def export_pairs(store: VoteStore, out: str | Path) -> ExportSummary:
    """Write every vote's pairs to `out` (JSON lines, written atomically); what was kept and dropped."""
    summary = ExportSummary()
    lines = [json.dumps(row, ensure_ascii=False) + "\n" for row in vote_pairs(store.votes(), summary)]
    write_with(out, lambda tmp: Path(tmp).write_text("".join(lines), encoding="utf-8"))
    return summary
