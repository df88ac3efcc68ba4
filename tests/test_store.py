from __future__ import annotations

import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from flowdeck import store
from flowdeck.errors import StoreCorruptError, StoreError
from flowdeck.paths import home_dir
from tests.conftest import REPO_ROOT, run_cli


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_connect_creates_a_private_home_and_database_at_the_current_schema_version() -> None:
    conn = store.connect()
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == store.SCHEMA_VERSION
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert {"blocks", "variables"} <= tables
    finally:
        conn.close()
    assert _mode(home_dir()) == 0o700
    assert _mode(store.db_path()) == 0o600


def test_database_and_wal_files_are_0600_even_with_a_permissive_umask() -> None:
    old = os.umask(0)
    try:
        conn = store.connect()
        try:
            with store.transaction(conn):
                conn.execute("INSERT INTO variables (name, value) VALUES ('x', '1')")
            wal = store.db_path().with_name(store.DB_NAME + "-wal")
            shm = store.db_path().with_name(store.DB_NAME + "-shm")
            assert wal.exists() and shm.exists()
            assert {_mode(p) for p in (store.db_path(), wal, shm)} == {0o600}
            assert _mode(home_dir()) == 0o700
        finally:
            conn.close()
    finally:
        os.umask(old)


def test_the_cli_creates_private_files_under_umask_000(tmp_path: Path) -> None:
    home = tmp_path / "fresh-home"
    result = subprocess.run(
        ["sh", "-c", f'umask 000; exec "{sys.executable}" -m flowdeck variable set a b'],
        env={**os.environ, "FLOWDECK_HOME": str(home), "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert _mode(home) == 0o700
    assert [(p.name, _mode(p)) for p in sorted(home.iterdir())] == [
        ("flowdeck.db", 0o600),
        ("flowdeck.db.lock", 0o600),
    ]


def test_read_only_commands_do_not_create_the_store() -> None:
    assert run_cli("block", "ls").code == 0
    assert run_cli("variable", "ls").code == 0
    assert not home_dir().exists()


def test_a_transaction_that_fails_leaves_nothing_behind() -> None:
    conn = store.connect()
    try:
        with pytest.raises(RuntimeError), store.transaction(conn):
            conn.execute("INSERT INTO variables (name, value) VALUES ('half', '1')")
            raise RuntimeError("boom")
        assert conn.execute("SELECT count(*) FROM variables").fetchone()[0] == 0
    finally:
        conn.close()


def test_appended_migrations_upgrade_an_existing_store_once_keeping_its_data(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    conn = store.connect()
    with store.transaction(conn):
        conn.execute("INSERT INTO variables (name, value) VALUES ('kept', '\"yes\"')")
    conn.close()

    calls: list[int] = []

    def backfill(c: sqlite3.Connection) -> None:
        calls.append(1)
        c.execute("INSERT INTO example_items (name) SELECT name FROM variables")

    monkeypatch.setattr(
        store,
        "MIGRATIONS",
        [
            *store.MIGRATIONS,
            "CREATE TABLE example_items (name TEXT PRIMARY KEY);\n"
            "CREATE INDEX example_items_name ON example_items (name);",
            backfill,
        ],
    )
    for _ in range(2):
        conn = store.connect()
        try:
            assert conn.execute("PRAGMA user_version").fetchone()[0] == store.SCHEMA_VERSION + 2
            assert conn.execute("SELECT name FROM example_items").fetchall() == [("kept",)]
        finally:
            conn.close()
    assert calls == [1]


def test_a_store_from_a_newer_flowdeck_is_refused_with_a_hint() -> None:
    store.connect().close()
    raw = sqlite3.connect(store.db_path())
    raw.execute("PRAGMA user_version = 99")
    raw.close()
    with pytest.raises(StoreError) as info:
        store.connect()
    assert str(info.value) == (
        f"the store {store.db_path()} has schema version 99, newer than this flowdeck supports "
        f"({store.SCHEMA_VERSION}) (hint: upgrade flowdeck (`pip install -U flowdeck`) or point "
        "FLOWDECK_HOME elsewhere)"
    )


def _stored_store_bytes() -> bytes:
    """A real store with a block, a variable, a deployment version and a run, as bytes."""
    conn = store.connect()
    try:
        with store.transaction(conn):
            conn.execute("INSERT INTO blocks (type_slug, name, data) VALUES ('secret', 'tok', '{\"value\": \"s\"}')")
            for i in range(200):  # enough rows for several pages, so that truncation loses some
                conn.execute("INSERT INTO variables (name, value) VALUES (?, ?)", (f"v{i}", f'"{"x" * 100}"'))
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    return store.db_path().read_bytes()


_READERS = [("block", "ls"), ("block", "show", "secret/tok"), ("variable", "get", "v1"), ("variable", "ls"),
            ("deployment", "ls"), ("deployment", "history", "x"), ("run", "ls")]
_WRITERS = [("variable", "set", "a", "b"), ("block", "create", "string", "s", "--value", "v")]


@pytest.mark.parametrize("damage", ["garbage", "empty", "truncated", "header only"])
def test_a_damaged_store_is_a_clear_error_naming_the_file_and_never_replaced(damage: str) -> None:
    good = _stored_store_bytes()
    for suffix in ("-wal", "-shm"):
        store.db_path().with_name(store.DB_NAME + suffix).unlink(missing_ok=True)
    damaged = {
        "garbage": b"this is not a database" * 100,
        "empty": b"",
        "truncated": good[: len(good) // 2],
        "header only": good[:100],
    }[damage]
    store.db_path().write_bytes(damaged)
    for argv in _READERS + _WRITERS:
        result = run_cli(*argv)
        assert result.code == 1, (argv, result.stderr)
        assert "Traceback" not in result.output and "internal error" not in result.output
        assert result.stderr.startswith(f"error: the store {store.db_path()} is damaged ("), (argv, result.stderr)
        assert f"hint: move it aside (`mv {store.db_path()} {store.db_path()}.damaged`" in result.stderr
        # No command starts a fresh store over it.
        assert store.db_path().read_bytes() == damaged, argv
    with pytest.raises(StoreCorruptError):
        store.connect()


def test_a_new_store_appears_only_complete() -> None:
    # Built aside and linked into place: nothing else is left in the home, and it is never empty.
    store.connect().close()
    assert store.db_path().stat().st_size > 0
    assert sorted(p.name for p in home_dir().iterdir() if not p.name.startswith("flowdeck.db-")) == [
        "flowdeck.db", "flowdeck.db.lock"]


def _seed_rows() -> None:
    conn = store.connect()
    try:
        with store.transaction(conn):
            conn.execute("INSERT INTO blocks (type_slug, name, data) VALUES ('secret', 'tok', '{\"value\": \"s\"}')")
            conn.execute("INSERT INTO variables (name, value) VALUES ('v', '1')")
            conn.execute("INSERT INTO deployments (name, flow_name, deployment_name, live_revision) "
                         "VALUES ('f/d', 'f', 'd', 1)")
            conn.execute("INSERT INTO versions (deployment, revision, label, content_hash, record, version_info) "
                         "VALUES ('f/d', 1, 'v1', 'h', '{\"entrypoint\": \"f.py:f\"}', '{}')")
            conn.execute("INSERT INTO runs (deployment, revision, status, parameters) VALUES ('f/d', 1, 'ok', '{}')")
    finally:
        conn.close()


def _damage(sql: str, *params: object) -> None:
    conn = sqlite3.connect(store.db_path())
    try:
        conn.execute(sql, params)
        conn.commit()
    finally:
        conn.close()


SENTINEL = "SENTINEL-ROW-VALUE-4711"


@pytest.mark.parametrize(
    ("sql", "commands", "entry", "repair"),
    [
        ("UPDATE blocks SET data = ?", [("block", "show", "secret/tok"), ("block", "ls")],
         "block secret/tok is not valid JSON", ("block", "rm", "secret/tok")),
        ("UPDATE blocks SET data = '[1, 2]' WHERE ? IS NOT NULL", [("block", "show", "secret/tok"), ("block", "ls")],
         "block secret/tok is list where a JSON object was expected", ("block", "rm", "secret/tok")),
        ("UPDATE variables SET value = ?", [("variable", "get", "v"), ("variable", "ls")],
         "variable v is not valid JSON", ("variable", "rm", "v")),
        ("UPDATE deployments SET schedules = ?", [("deployment", "ls"), ("deployment", "history", "f/d"),
                                                 ("deployment", "show", "f/d"), ("run", "ls", "f/d")],
         "deployment f/d (schedules) is not valid JSON", ("deployment", "rm", "f/d")),
        ("UPDATE versions SET record = ?", [("deployment", "history", "f/d"), ("deployment", "show", "f/d")],
         "revision 1 of deployment f/d (record) is not valid JSON", ("deployment", "rm", "f/d")),
        ("UPDATE versions SET version_info = '\"text\"' WHERE ? IS NOT NULL", [("deployment", "history", "f/d")],
         "revision 1 of deployment f/d (version info) is str where a JSON object was expected",
         ("deployment", "rm", "f/d")),
        ("UPDATE versions SET record = '{\"entrypoint\": \"f.py:f\", \"pull_steps\": 5}' WHERE ? IS NOT NULL",
         [("deployment", "show", "f/d"), ("pull", "f/d"), ("run", "f/d")],
         "revision 1 of deployment f/d (record): its pull_steps is an integer, not a list",
         ("deployment", "rm", "f/d")),
        ("UPDATE versions SET record = '{}' WHERE ? IS NOT NULL", [("deployment", "show", "f/d"), ("run", "f/d")],
         "revision 1 of deployment f/d (record) has no entrypoint", ("deployment", "rm", "f/d")),
        ("UPDATE runs SET parameters = ?", [("run", "ls")], "run 1 (parameters) is not valid JSON", None),
        ("UPDATE runs SET result = CAST(? AS BLOB)", [("run", "ls")], "run 1 (result) is not valid JSON", None),
    ],
    ids=["block json", "block shape", "variable", "schedules", "record", "version info", "record shape",
         "record without entrypoint", "run parameters", "run result blob"],
)
def test_a_damaged_row_is_a_clear_error_naming_the_entry_never_its_value(
    sql: str, commands: list[tuple[str, ...]], entry: str, repair: tuple[str, ...] | None
) -> None:
    _seed_rows()
    _damage(sql, "{" + SENTINEL)
    for argv in commands:
        result = run_cli(*argv)
        assert result.code == 1, (argv, result.output)
        assert result.stderr.startswith(f"error: the store {store.db_path()} holds a damaged entry: {entry} "), (
            argv, result.stderr)
        assert "hint: " in result.stderr and SENTINEL not in result.output
    if repair is not None:
        # The command the hint names works on the damaged entry itself.
        assert run_cli(*repair).code == 0
        for argv in commands:
            assert run_cli(*argv).code in (0, 1)
            assert "damaged entry" not in run_cli(*argv).stderr


def test_snapshot_gc_deletes_nothing_when_a_version_record_is_damaged() -> None:
    """A record gc cannot read might name any snapshot: gc stops before it lists (or deletes) anything."""
    _seed_rows()
    _damage("UPDATE versions SET record = ?", "{" + SENTINEL)
    # A closed loopback port: were gc to go on, it could not reach any store.
    result = run_cli("snapshot", "gc", "s3://b/flows", "--grace", "0s", "--endpoint-url", "http://127.0.0.1:9")
    assert result.code == 1, result.output
    assert result.stderr.startswith(
        f"error: cannot tell which versions on flowdeck's store at {store.db_path()} use the snapshots of "
        f"s3://b/flows/, so gc deleted nothing: the store {store.db_path()} holds a damaged entry: revision 1 of "
        "deployment f/d (record) is not valid JSON"), result.stderr
    assert "hint: remove the deployment with `flowdeck deployment rm f/d`" in result.stderr
    assert SENTINEL not in result.output


_WRITER = textwrap.dedent("""
    import sys, time
    from flowdeck.block_store import save_block
    from flowdeck.variables import set_variable
    worker = int(sys.argv[1])
    start = float(sys.argv[2])
    while time.time() < start:
        time.sleep(0.001)
    for i in range(15):
        set_variable(f"w{worker}_v{i}", {"worker": worker, "i": i})
        save_block("secret", f"w{worker}-s{i}", {"value": f"secret-{worker}-{i}"})
""")


def test_eight_concurrent_writer_processes_lose_no_write_and_keep_the_store_intact(tmp_path: Path) -> None:
    # A fresh home: the processes also race to create and migrate the database.
    import time

    script = tmp_path / "writer.py"
    script.write_text(_WRITER)
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    start = time.time() + 1.5
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(w), str(start)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(8)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err
    conn = store.connect()
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("SELECT count(*) FROM variables").fetchone()[0] == 8 * 15
        assert conn.execute("SELECT count(*) FROM blocks").fetchone()[0] == 8 * 15
    finally:
        conn.close()


def test_eight_concurrent_cli_invocations_all_land() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "flowdeck", "variable", "set", f"v{i}", str(i), "--json"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(8)
    ] + [
        subprocess.Popen(
            [sys.executable, "-m", "flowdeck", "block", "create", "string", f"s{i}", "--value", f"text {i}"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(8)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err
    listing = run_cli("variable", "ls", "--json")
    assert listing.code == 0
    import json

    assert json.loads(listing.stdout) == {f"v{i}": i for i in range(8)}
    blocks = json.loads(run_cli("block", "ls", "--json").stdout)
    assert sorted(b["name"] for b in blocks) == sorted(f"s{i}" for i in range(8))


# --- a full disk ------------------------------------------------------------------------------------------


@pytest.fixture
def tiny_fs(tmp_path: Path) -> Iterator[Path]:
    """A 512 KiB tmpfs owned by us (root, or passwordless sudo as on CI runners).

    Under CI=true a mount that fails is a failure, not a skip.
    """
    mount = tmp_path / "tiny"
    mount.mkdir()
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    options = f"size=512k,mode=0700,uid={os.getuid()},gid={os.getgid()}"
    result = None
    if shutil.which("mount") and (not sudo or shutil.which("sudo")):
        result = subprocess.run([*sudo, "mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mount)],
                                capture_output=True, text=True, check=False)
    if result is None or result.returncode != 0:
        why = f"cannot mount a tmpfs: {result.stderr.strip() if result else 'no mount (or sudo) command'}"
        if os.environ.get("CI") == "true":
            pytest.fail(why)
        pytest.skip(why)
    try:
        yield mount
    finally:
        subprocess.run([*sudo, "umount", "-l", str(mount)], check=False)


def _fill(directory: Path) -> Path:
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError:
        pass
    finally:
        os.close(fd)
    return filler


def test_a_full_disk_says_so_with_the_path_and_leaves_the_store_intact(tiny_fs: Path) -> None:
    home = tiny_fs / "home"
    env = {"FLOWDECK_HOME": str(home)}
    assert run_cli("variable", "set", "kept", "1", env=env).code == 0
    filler = _fill(tiny_fs)
    for argv in [("variable", "set", "lost", "2"), ("block", "create", "string", "s", "--value", "v")]:
        result = run_cli(*argv, env=env)
        assert result.code == 1, result.output
        assert "Traceback" not in result.output
        assert result.stderr.startswith("error: the disk is full: "), result.stderr
        assert str(home / "flowdeck.db") in result.stderr
        assert "the store itself is intact" in result.stderr and "move it" not in result.stderr
    filler.unlink()
    listing = run_cli("variable", "ls", "--json", env=env)
    assert listing.code == 0, listing.stderr
    assert '"lost"' not in listing.stdout and '"kept"' in listing.stdout
    conn = sqlite3.connect(home / "flowdeck.db")
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert [r[0] for r in conn.execute("SELECT name FROM variables")] == ["kept"]
    finally:
        conn.close()
    assert run_cli("variable", "set", "after", "3", env=env).code == 0


def test_a_write_larger_than_the_free_space_is_refused_whole(tiny_fs: Path) -> None:
    home = tiny_fs / "home"
    env = {"FLOWDECK_HOME": str(home)}
    assert run_cli("variable", "set", "kept", "1", env=env).code == 0
    result = run_cli("variable", "set", "big", "-", env=env, input="x" * 900_000)
    assert result.code == 1, result.output
    assert result.stderr.startswith("error: the disk is full: "), result.stderr
    assert str(home / "flowdeck.db") in result.stderr
    listing = run_cli("variable", "ls", "--json", env=env)
    assert listing.code == 0 and '"big"' not in listing.stdout and '"kept"' in listing.stdout


def test_a_store_that_cannot_be_created_on_a_full_disk_leaves_no_file(tiny_fs: Path) -> None:
    home = tiny_fs / "home"
    home.mkdir(mode=0o700)
    _fill(tiny_fs)
    result = run_cli("variable", "set", "a", "1", env={"FLOWDECK_HOME": str(home)})
    assert result.code == 1, result.output
    assert result.stderr.startswith("error: the disk is full: creating the store failed"), result.stderr
    assert "no store was created" in result.stderr
    # No empty or half-built flowdeck.db that a later command would have to refuse as damaged.
    assert not (home / "flowdeck.db").exists()
    assert [p.name for p in home.iterdir() if p.name != "flowdeck.db.lock"] == []


def test_json_nested_thousands_of_levels_is_refused_wherever_a_user_gives_json() -> None:
    # json.loads raised RecursionError (exit 3); 101 levels would make later walks fragile.
    for deep in ("[" * 5000 + "]" * 5000, "[" * 101 + "]" * 101):
        for argv, env in [
            (("variable", "set", "v", deep, "--json"), None),
            (("block", "create", "json", "j", "--value", deep), None),
            (("block", "show", "json/e"), {"FLOWDECK_BLOCK__JSON__E": deep}),
        ]:
            result = run_cli(*argv, env=env)
            assert result.code == 1, (argv, result.output)
            assert "is not valid JSON" in result.stderr and "internal error" not in result.output
    assert run_cli("variable", "set", "v", "[" * 99 + "]" * 99, "--json").code == 0
