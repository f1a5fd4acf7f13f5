"""The warehouse on Postgres: copy the raw layer from DuckDB, and a read-only role for BI.

Ingest lands raw tables in the DuckDB warehouse. A deployment whose warehouse is Postgres
copies them over with `push_to_postgres` (the `raw_<source>` schemas and the `q2c_ops`
tables dbt reads as sources) and then runs dbt with `--target postgres`; the same models
build the same marts there. The copy keeps every column's type (raw values stay text),
streams each table through COPY, and replaces all tables in one transaction, so a reader
never sees half a load.

Connection settings come from Q2C_PG_HOST, Q2C_PG_PORT, Q2C_PG_USER, Q2C_PG_PASSWORD and
Q2C_PG_DBNAME, the variables dbt's `postgres` target reads (dbt_project/profiles.yml).
The database must be UTF-8 with a byte-order collation and a UTF-8 character type
(locale C.UTF-8), so text sorts, compares and changes case exactly as in DuckDB.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import re
import secrets
import stringprep
import tempfile
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import psycopg2
import yaml
from psycopg2 import errors as pg_errors
from psycopg2 import sql

from q2c.settings import PROJECT_ROOT
from q2c.warehouse import OPS_SCHEMA, connect

log = logging.getLogger(__name__)

RAW_SCHEMA_PREFIX = "raw_"
REPORTING_SCHEMA = "reporting"
# Schemas q2c and dbt write besides `reporting`: a BI role gets nothing in them.
PRIVATE_SCHEMAS = ("staging", "intermediate", "core", "kpi", "delivery", OPS_SCHEMA)
# Schemas whose views `dbt build` creates again: a push may drop a view there that reads a
# raw table whose columns changed. A view anywhere else (raw_* and q2c_ops included, where
# q2c writes only tables) belongs to someone else, and the push refuses to drop it.
DBT_SCHEMAS = ("staging", "intermediate", "core", "kpi", "delivery", REPORTING_SCHEMA)
DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"
_BYTE_ORDER_COLLATIONS = {"c", "posix", "c.utf-8", "c.utf8", "ucs_basic"}
_CREATE_DATABASE_HINT = (
    "create the database with `createdb --template=template0 --encoding=UTF8 "
    "--locale=C.UTF-8 <name>` (or CREATE DATABASE ... TEMPLATE template0 ENCODING 'UTF8' "
    "LOCALE 'C.UTF-8') and point Q2C_PG_DBNAME at it"
)
# DuckDB type -> Postgres type, spelled as Postgres' format_type() spells it.
_SIMPLE_TYPES = {
    "VARCHAR": "text", "BOOLEAN": "boolean", "SMALLINT": "smallint", "INTEGER": "integer",
    "BIGINT": "bigint", "REAL": "real", "FLOAT": "real", "DOUBLE": "double precision",
    "DATE": "date", "TIME": "time without time zone",
    "TIMESTAMP": "timestamp without time zone",
    "TIMESTAMP WITH TIME ZONE": "timestamp with time zone", "INTERVAL": "interval",
    "UUID": "uuid", "BLOB": "bytea", "JSON": "jsonb", "HUGEINT": "numeric(38,0)",
}


class PostgresWarehouseError(RuntimeError):
    """The Postgres warehouse cannot be reached, used or loaded as asked."""


@dataclass(frozen=True)
class PostgresTarget:
    """Where the Postgres warehouse is and who q2c logs in as."""

    host: str
    port: int
    user: str
    password: str | None
    dbname: str

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> PostgresTarget:
        """Read the Q2C_PG_* variables; a missing user or database is an error that says so."""
        env = os.environ if env is None else env
        missing = [name for name in ("Q2C_PG_USER", "Q2C_PG_DBNAME") if not env.get(name)]
        if missing:
            raise PostgresWarehouseError(
                f"{' and '.join(missing)} not set: export Q2C_PG_HOST, Q2C_PG_PORT, "
                "Q2C_PG_USER, Q2C_PG_PASSWORD and Q2C_PG_DBNAME for the Postgres warehouse"
            )
        port_text = env.get("Q2C_PG_PORT") or "5432"
        if not port_text.isdigit():
            raise PostgresWarehouseError(f"Q2C_PG_PORT must be a port number, got `{port_text}`")
        return cls(
            host=env.get("Q2C_PG_HOST") or "127.0.0.1", port=int(port_text),
            user=env["Q2C_PG_USER"], password=env.get("Q2C_PG_PASSWORD") or None,
            dbname=env["Q2C_PG_DBNAME"],
        )

    def describe(self) -> str:
        return f"{self.user}@{self.host}:{self.port}/{self.dbname}"

    def connect(self):
        try:
            return psycopg2.connect(host=self.host, port=self.port, user=self.user,
                                    password=self.password, dbname=self.dbname,
                                    application_name="q2c")
        except psycopg2.OperationalError as exc:
            raise PostgresWarehouseError(
                f"cannot connect to the Postgres warehouse {self.describe()}: "
                f"{str(exc).strip()}"
            ) from exc


@dataclass(frozen=True)
class CopiedTable:
    """One table pushed: its rows, and whether it had to be created or recreated."""

    schema: str
    name: str
    rows: int
    action: str

    @property
    def relation(self) -> str:
        return f"{self.schema}.{self.name}"


def ops_source_tables(project_dir: Path = DBT_PROJECT_DIR) -> tuple[str, ...]:
    """The q2c_ops tables the dbt project declares as sources, read from its yml files."""
    tables: set[str] = set()
    for path in sorted((project_dir / "models").rglob("*.yml")):
        document = yaml.safe_load(path.read_text()) or {}
        for source in document.get("sources") or []:
            if source.get("schema") == OPS_SCHEMA:
                tables.update(table["name"] for table in source.get("tables") or [])
    return tuple(sorted(tables))


def postgres_type(duck_type: str, where: str) -> str:
    """The Postgres type holding the same values as a DuckDB column type."""
    text = duck_type.upper().strip()
    decimal = re.fullmatch(r"DECIMAL\((\d+),\s*(\d+)\)", text)
    if decimal:
        return f"numeric({decimal.group(1)},{decimal.group(2)})"
    if text in _SIMPLE_TYPES:
        return _SIMPLE_TYPES[text]
    raise PostgresWarehouseError(
        f"{where} has DuckDB type {duck_type}, which q2c does not copy to Postgres; "
        "cast it to text, a number, a date or a timestamp where it is written"
    )


def check_database_locale(pg_conn) -> None:
    """Refuse a database whose text rules differ from DuckDB's (see the module docstring)."""
    with pg_conn.cursor() as cur:
        cur.execute(
            "select pg_encoding_to_char(encoding), datcollate, datctype from pg_database "
            "where datname = current_database()"
        )
        encoding, collate, ctype = cur.fetchone()
    problems = []
    if encoding != "UTF8":
        problems.append(f"its encoding is {encoding}, not UTF8")
    if collate.lower() not in _BYTE_ORDER_COLLATIONS:
        problems.append(f"its collation {collate} does not sort text by code point as DuckDB "
                        "does (ids and names would order differently)")
    if not re.search(r"utf-?8$", ctype.lower()):
        problems.append(f"its character type {ctype} cannot lower-case non-ASCII letters "
                        "as DuckDB does")
    if problems:
        raise PostgresWarehouseError(
            "the Postgres warehouse database cannot build marts identical to DuckDB's: "
            + "; ".join(problems) + ". " + _CREATE_DATABASE_HINT
        )


def duck_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def tables_to_copy(duck_conn, ops_tables: Iterable[str],
                   target: str = "Postgres") -> list[tuple[str, str]]:
    """The raw tables and the named ops tables of the DuckDB warehouse, as (schema, name).

    An ops table a dbt source reads but DuckDB does not have is named in a warning: the
    models reading it fail on `target` until it is there.
    """
    ops_tables = set(ops_tables)
    found = [
        (schema, name) for schema, name in duck_conn.execute(
            "select table_schema, table_name from information_schema.tables "
            "where table_type = 'BASE TABLE' order by table_schema, table_name"
        ).fetchall()
        if schema.startswith(RAW_SCHEMA_PREFIX) or (schema == OPS_SCHEMA and name in ops_tables)
    ]
    present = {name for schema, name in found if schema == OPS_SCHEMA}
    for name in sorted(ops_tables - present):
        log.warning("%s.%s is not in the DuckDB warehouse; not copied (dbt models reading "
                    "it fail on %s until it is)", OPS_SCHEMA, name, target)
    return found


def _duck_columns(duck_conn, schema: str, name: str) -> list[tuple[str, str]]:
    rows = duck_conn.execute(
        "select column_name, data_type from information_schema.columns "
        "where table_schema = ? and table_name = ? order by ordinal_position",
        [schema, name],
    ).fetchall()
    return [(column, postgres_type(kind, f"{schema}.{name}.{column}")) for column, kind in rows]


def _pg_columns(cur, schema: str, name: str) -> list[tuple[str, str]]:
    cur.execute(
        "select a.attname, format_type(a.atttypid, a.atttypmod) from pg_attribute a "
        "join pg_class c on c.oid = a.attrelid join pg_namespace n on n.oid = c.relnamespace "
        "where n.nspname = %s and c.relname = %s and c.relkind = 'r' and a.attnum > 0 "
        "and not a.attisdropped order by a.attnum",
        [schema, name],
    )
    return cur.fetchall()


@dataclass(frozen=True)
class DependentObject:
    """A relation that reads a raw table (directly or through other views)."""

    schema: str
    name: str
    kind: str
    depth: int

    @property
    def relation(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def rebuilt_by_dbt(self) -> bool:
        return self.schema in DBT_SCHEMAS and self.kind in ("view", "materialized view")

    def describe(self) -> str:
        return f"{self.kind} {self.relation}"


_RELATION_KINDS = {"r": "table", "v": "view", "m": "materialized view", "p": "partitioned table",
                   "f": "foreign table", "S": "sequence", "c": "composite type"}

# Relations depending on a table, then on those, ...: views and materialized views through
# their rewrite rule, tables through a foreign key or a column of the table's row type.
_DEPENDENTS_SQL = """
with recursive dependents(relid, depth) as (
    select %(table)s::oid, 0
  union
    select dep.relid, d.depth + 1
    from dependents d
    join pg_type t on t.typrelid = d.relid
    join lateral (
        select r.ev_class as relid from pg_depend p join pg_rewrite r on r.oid = p.objid
        where p.classid = 'pg_rewrite'::regclass and p.refclassid = 'pg_class'::regclass
          and p.refobjid = d.relid and p.deptype = 'n'
        union
        select c.conrelid from pg_depend p join pg_constraint c on c.oid = p.objid
        where p.classid = 'pg_constraint'::regclass and p.refclassid = 'pg_class'::regclass
          and p.refobjid = d.relid and p.deptype = 'n'
        union
        select a.attrelid from pg_attribute a
        where a.atttypid = t.oid and a.attnum > 0 and not a.attisdropped
    ) dep on dep.relid <> d.relid
    where d.depth < 50
)
select n.nspname, c.relname, c.relkind::text, max(d.depth)
from dependents d join pg_class c on c.oid = d.relid
join pg_namespace n on n.oid = c.relnamespace
where d.depth > 0
group by n.nspname, c.relname, c.relkind
order by max(d.depth) desc, n.nspname, c.relname
"""


def dependent_objects(cur, schema: str, name: str) -> list[DependentObject]:
    """Every relation that stops working when the table is dropped, deepest first."""
    cur.execute(_DEPENDENTS_SQL, {"table": _relation_oid(cur, schema, name)})
    return [DependentObject(nsp, rel, _RELATION_KINDS.get(kind, f"relation ({kind})"), depth)
            for nsp, rel, kind, depth in cur.fetchall()]


def _relation_oid(cur, schema: str, name: str) -> int:
    cur.execute("select c.oid from pg_class c join pg_namespace n on n.oid = c.relnamespace "
                "where n.nspname = %s and c.relname = %s", [schema, name])
    return cur.fetchone()[0]


def _relation_kind(cur, schema: str, name: str) -> str | None:
    cur.execute("select c.relkind::text from pg_class c join pg_namespace n on "
                "n.oid = c.relnamespace where n.nspname = %s and c.relname = %s",
                [schema, name])
    row = cur.fetchone()
    return None if row is None else row[0]


def _refuse_foreign_dependents(blocked: dict[str, list[DependentObject]]) -> None:
    if not blocked:
        return
    lines = [f"{table} is read by {', '.join(d.describe() for d in deps)}"
             for table, deps in blocked.items()]
    names = sorted({d.relation for deps in blocked.values() for d in deps})
    raise PostgresWarehouseError(
        "the columns of " + ", ".join(blocked) + " changed in DuckDB, so the push must drop "
        "and recreate them on Postgres, but objects q2c does not own depend on them: "
        + "; ".join(lines) + ". q2c drops only views in the schemas dbt builds ("
        + ", ".join(DBT_SCHEMAS) + "). Save their definitions (pg_dump --schema-only "
        + " ".join(f"-t {name}" for name in names) + "), drop them, run push-postgres "
        "again and recreate them on the new columns. Nothing was changed on Postgres."
    )


def _check_recreations(cur, planned: dict[tuple[str, str], list[tuple[str, str]]]) -> None:
    """Before copying anything: refuse if a table to recreate has readers q2c must not drop.

    Each such table is locked first, so no view can be created on it between this check and
    the drop.
    """
    blocked: dict[str, list[DependentObject]] = {}
    for (schema, name), columns in planned.items():
        kind = _relation_kind(cur, schema, name)
        if kind is not None and kind != "r":
            raise PostgresWarehouseError(
                f"{schema}.{name} exists on Postgres as a "
                f"{_RELATION_KINDS.get(kind, 'relation')}, not a table; q2c loads only into "
                "tables it creates: rename or drop it and push again. Nothing was changed"
            )
        existing = _pg_columns(cur, schema, name)
        if not existing or existing == columns:
            continue
        cur.execute(sql.SQL("lock table {} in access exclusive mode").format(
            sql.Identifier(schema, name)))
        foreign = [d for d in dependent_objects(cur, schema, name) if not d.rebuilt_by_dbt]
        if foreign:
            blocked[f"{schema}.{name}"] = foreign
    _refuse_foreign_dependents(blocked)


def _drop_for_recreate(cur, schema: str, name: str) -> None:
    """Drop dbt's views on the table, then the table itself; never CASCADE to anything else."""
    dependents = dependent_objects(cur, schema, name)
    foreign = [d for d in dependents if not d.rebuilt_by_dbt]
    _refuse_foreign_dependents({f"{schema}.{name}": foreign} if foreign else {})
    for dependent in dependents:  # deepest first, so each drop finds no reader left
        cur.execute(sql.SQL("drop {} if exists {}").format(
            sql.SQL(dependent.kind), sql.Identifier(dependent.schema, dependent.name)))
    if dependents:
        log.warning("%s.%s changed shape in DuckDB; dropped the dbt views reading it until "
                    "the next dbt build: %s", schema, name,
                    ", ".join(d.relation for d in dependents))
    try:
        cur.execute(sql.SQL("drop table {}").format(sql.Identifier(schema, name)))
    except pg_errors.DependentObjectsStillExist as exc:
        detail = (exc.diag.message_detail or "").replace("\n", "; ")
        raise PostgresWarehouseError(
            f"{schema}.{name} changed shape and must be recreated, but other objects depend "
            f"on it ({detail}); q2c does not drop objects it does not own: drop or change "
            "them and push again. Nothing was changed on Postgres"
        ) from exc


def _prepare_table(cur, schema: str, name: str, columns: list[tuple[str, str]]) -> str:
    """Empty the Postgres table when its columns match; else (re)create it."""
    table = sql.Identifier(schema, name)
    existing = _pg_columns(cur, schema, name)
    if existing == columns:
        cur.execute(sql.SQL("truncate table {}").format(table))
        return "replaced"
    action = "created"
    if existing:
        log.warning("%s.%s changed shape in DuckDB; recreating it on Postgres", schema, name)
        _drop_for_recreate(cur, schema, name)
        action = "recreated"
    cur.execute(sql.SQL("create table {} ({})").format(table, sql.SQL(", ").join(
        sql.SQL("{} {}").format(sql.Identifier(column), sql.SQL(kind))
        for column, kind in columns
    )))
    return action


def _copy_table(duck_conn, cur, schema: str, name: str, columns: list[tuple[str, str]],
                folder: Path) -> CopiedTable:
    export = folder / f"{schema}.{name}.csv"
    # Every value is quoted, so an unquoted empty field is a NULL and "" an empty text.
    duck_conn.execute(
        f"copy (select * from {duck_ident(schema)}.{duck_ident(name)}) "
        f"to '{str(export).replace(chr(39), chr(39) * 2)}' "
        "(format csv, header false, force_quote *)"
    )
    action = _prepare_table(cur, schema, name, columns)
    statement = sql.SQL("copy {} ({}) from stdin with (format csv)").format(
        sql.Identifier(schema, name),
        sql.SQL(", ").join(sql.Identifier(column) for column, _ in columns),
    )
    try:
        with export.open("rb") as handle:
            cur.copy_expert(statement.as_string(cur), handle)
    except psycopg2.DataError as exc:
        raise PostgresWarehouseError(
            f"{schema}.{name} could not be copied to Postgres: {str(exc).strip()}. Postgres "
            "rejected a value of that table (a NUL byte in text is the usual cause); fix it "
            "in the landed file and ingest again"
        ) from exc
    finally:
        export.unlink(missing_ok=True)
    return CopiedTable(schema, name, cur.rowcount, action)


def push_to_postgres(
    warehouse_path: Path, pg_conn, ops_tables: Iterable[str] | None = None
) -> list[CopiedTable]:
    """Copy the raw schemas and q2c_ops source tables from DuckDB, in one transaction.

    A table whose columns changed is dropped and created again; views dbt builds on it go
    with it (the next dbt build makes them again). Any other object reading such a table,
    such as another team's view, makes the push refuse before it copies anything.
    """
    check_database_locale(pg_conn)
    ops_tables = ops_source_tables() if ops_tables is None else tuple(ops_tables)
    copied: list[CopiedTable] = []
    with connect(Path(warehouse_path), read_only=True) as duck_conn, \
            tempfile.TemporaryDirectory(prefix="q2c-push-") as folder:
        tables = tables_to_copy(duck_conn, ops_tables)
        if not any(schema.startswith(RAW_SCHEMA_PREFIX) for schema, _ in tables):
            raise PostgresWarehouseError(
                f"no raw_<source> tables in {warehouse_path}: run the ingest (`q2c run`) "
                "before pushing the warehouse to Postgres"
            )
        planned = {(schema, name): _duck_columns(duck_conn, schema, name)
                   for schema, name in tables}
        try:
            with pg_conn.cursor() as cur:
                _check_recreations(cur, planned)
                for schema in sorted({schema for schema, _ in tables}):
                    cur.execute(sql.SQL("create schema if not exists {}").format(
                        sql.Identifier(schema)))
                for (schema, name), columns in planned.items():
                    table = _copy_table(duck_conn, cur, schema, name, columns, Path(folder))
                    log.info("%s: %d rows copied to Postgres (%s)", table.relation,
                             table.rows, table.action)
                    copied.append(table)
            pg_conn.commit()
        except BaseException:
            pg_conn.rollback()
            raise
    return copied


# ---------------------------------------------------------------------------------------
# Passwords: only a SCRAM-SHA-256 verifier travels to the server
# ---------------------------------------------------------------------------------------
SCRAM_ITERATIONS = 4096
_SCRAM_SALT_BYTES = 16
_SASLPREP_PROHIBITED = (
    stringprep.in_table_c12, stringprep.in_table_c21, stringprep.in_table_c22,
    stringprep.in_table_c3, stringprep.in_table_c4, stringprep.in_table_c5,
    stringprep.in_table_c6, stringprep.in_table_c7, stringprep.in_table_c8,
    stringprep.in_table_c9, stringprep.in_table_a1,
)


def _saslprep(password: str) -> bytes:
    """The password bytes SCRAM hashes: SASLprep (RFC 4013) as Postgres and libpq apply it.

    libpq prepares the password this way when it logs in, so the verifier must be computed
    from the same bytes; a password SASLprep rejects is used as it is, on both sides.
    """
    raw = password.encode("utf-8")
    if password.isascii():
        return raw
    mapped = "".join(" " if stringprep.in_table_c12(ch) else ch for ch in password
                     if not stringprep.in_table_b1(ch))
    if not mapped or any(check(ch) for ch in mapped for check in _SASLPREP_PROHIBITED):
        return raw
    if any(stringprep.in_table_d1(ch) for ch in mapped) and (
        any(stringprep.in_table_d2(ch) for ch in mapped)
        or not (stringprep.in_table_d1(mapped[0]) and stringprep.in_table_d1(mapped[-1]))
    ):
        return raw
    return unicodedata.normalize("NFKC", mapped).encode("utf-8")


def scram_sha256_verifier(password: str, salt: bytes | None = None,
                          iterations: int = SCRAM_ITERATIONS) -> str:
    """The SCRAM-SHA-256 secret Postgres stores for a password (RFC 5802 and RFC 7677).

    CREATE ROLE and ALTER ROLE accept it in place of the password, so the password itself
    never reaches the server: not its statement log, not pg_stat_statements, not a replica.
    """
    salt = secrets.token_bytes(_SCRAM_SALT_BYTES) if salt is None else salt
    salted = hashlib.pbkdf2_hmac("sha256", _saslprep(password), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode("ascii")

    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


# ---------------------------------------------------------------------------------------
# The read-only BI role
# ---------------------------------------------------------------------------------------
_TABLE_PRIVILEGES = ["SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES",
                     "TRIGGER"]
# What a role can do in q2c's schemas beyond reading `reporting`: ownership, schema rights,
# table rights, each as has_*_privilege / pg_has_role sees it (inherited rights included),
# and whether PUBLIC has the same right.
_RIGHTS_SQL = """
with q2c_schemas as (
    select oid, nspname, nspowner, nspname = %(reporting)s as open from pg_namespace
    where starts_with(nspname, %(raw)s) or nspname = any(%(private)s)
       or nspname = %(reporting)s
), q2c_relations as (
    select c.oid, s.nspname, c.relname, c.relowner, s.open
    from pg_class c join q2c_schemas s on s.oid = c.relnamespace
    where c.relkind in ('r', 'v', 'm', 'p', 'f')
)
select nspname, null, 'owns', false from q2c_schemas
where pg_has_role(%(role)s, nspowner, 'MEMBER')
union all
select s.nspname, null, lower(p.priv), has_schema_privilege('public', s.oid, p.priv)
from q2c_schemas s cross join unnest(array['USAGE', 'CREATE']) p(priv)
where not pg_has_role(%(role)s, s.nspowner, 'MEMBER')
  and has_schema_privilege(%(role)s, s.oid, p.priv) and not (s.open and p.priv = 'USAGE')
union all
select nspname, relname, 'owns', false from q2c_relations
where pg_has_role(%(role)s, relowner, 'MEMBER')
union all
select r.nspname, r.relname, lower(p.priv), has_table_privilege('public', r.oid, p.priv)
from q2c_relations r cross join unnest(%(privileges)s::text[]) p(priv)
where not pg_has_role(%(role)s, r.relowner, 'MEMBER')
  and has_table_privilege(%(role)s, r.oid, p.priv) and not (r.open and p.priv = 'SELECT')
order by 1, 2 nulls first, 3
"""
# Every role the BI role can act as, through any chain of memberships (SET ROLE works on a
# NOINHERIT membership too), with the chain that leads there.
_MEMBERSHIPS_SQL = """
with recursive chain(roleid, path) as (
    select m.roleid, array[m.roleid] from pg_auth_members m
    where m.member = (select oid from pg_roles where rolname = %s)
  union all
    select m.roleid, c.path || m.roleid from chain c
    join pg_auth_members m on m.member = c.roleid
    where m.roleid <> all(c.path)
)
select array(select r.rolname::text from unnest(c.path) with ordinality u(oid, i)
             join pg_roles r on r.oid = u.oid order by u.i)
from chain c order by 1
"""


@dataclass(frozen=True)
class Right:
    """One thing a role can do in a q2c schema that a read-only BI role must not."""

    schema: str
    relation: str | None
    privilege: str
    public: bool

    def describe(self) -> str:
        target = (f"schema {self.schema}" if self.relation is None
                  else f"{self.schema}.{self.relation}")
        text = f"{self.privilege} {target}" if self.privilege == "owns" else \
            f"{self.privilege} on {target}"
        return text + (" (granted to PUBLIC)" if self.public else "")


@dataclass(frozen=True)
class BiRoleGrant:
    """What grant_bi_role did: the role, whether it was new, whether it can log in."""

    role: str
    created: bool
    can_login: bool
    readable: tuple[str, ...]
    closed_schemas: tuple[str, ...]
    changed_attributes: tuple[str, ...] = ()
    revoked_memberships: tuple[str, ...] = ()
    unreadable: tuple[str, ...] = ()


def _summary(items: list[str], limit: int = 4) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def role_rights(cur, role: str) -> list[Right]:
    """What `role` can do in q2c's schemas beyond reading `reporting` (inherited included)."""
    cur.execute(_RIGHTS_SQL, {"role": role, "raw": RAW_SCHEMA_PREFIX,
                              "private": list(PRIVATE_SCHEMAS), "reporting": REPORTING_SCHEMA,
                              "privileges": _TABLE_PRIVILEGES})
    return [Right(*row) for row in cur.fetchall()]


def role_memberships(cur, role: str) -> list[tuple[str, ...]]:
    """Each chain of memberships from `role`: (first role it is a member of, ..., last)."""
    cur.execute(_MEMBERSHIPS_SQL, [role])
    return [tuple(path) for (path,) in cur.fetchall()]


def _risky_memberships(cur, role: str) -> dict[str, list[str]]:
    """Direct memberships of `role` that lead to a role with rights beyond `reporting`.

    Rights PUBLIC has too are left out here: every role has them, and the final check
    names them on the BI role itself.
    """
    rights: dict[str, list[str]] = {}
    risky: dict[str, list[str]] = {}
    for path in role_memberships(cur, role):
        last = path[-1]
        if last not in rights:
            rights[last] = [r.describe() for r in role_rights(cur, last) if not r.public]
        if rights[last]:
            risky.setdefault(path[0], []).append(
                f"{' → '.join((role, *path))} ({_summary(rights[last], 3)})")
    return risky


def _resolve_memberships(cur, role: str, role_id: sql.Identifier,
                         revoke: bool) -> tuple[str, ...]:
    risky = _risky_memberships(cur, role)
    if not risky:
        return ()
    if not revoke:
        raise PostgresWarehouseError(
            f"role {role} is a member of roles with rights on q2c's schemas beyond reading "
            f"{REPORTING_SCHEMA}, which it would keep (and could use after SET ROLE): "
            + "; ".join(chain for chains in risky.values() for chain in chains)
            + ". Remove these memberships ("
            + "; ".join(f'REVOKE "{granted}" FROM "{role}"' for granted in risky)
            + "), or run grant-bi-role again with --revoke-memberships to have q2c revoke "
            "them. Nothing was changed"
        )
    for granted in risky:
        try:
            cur.execute(sql.SQL("revoke {} from {}").format(sql.Identifier(granted), role_id))
        except psycopg2.Error as exc:
            raise PostgresWarehouseError(
                f"cannot revoke role {granted} from {role}: {str(exc).strip()}; a superuser "
                f'or an admin of {granted} must run REVOKE "{granted}" FROM "{role}". '
                "Nothing was changed"
            ) from exc
        log.warning("BI role %s: revoked its membership in %s", role, granted)
    return tuple(risky)


def _role_attributes(cur, role: str) -> dict[str, bool] | None:
    cur.execute("select rolsuper, rolreplication, rolbypassrls, rolcreatedb, rolcreaterole, "
                "rolcanlogin from pg_roles where rolname = %s", [role])
    row = cur.fetchone()
    if row is None:
        return None
    names = ("superuser", "replication", "bypassrls", "createdb", "createrole", "login")
    return dict(zip(names, row, strict=True))


def _refuse_privileged_role(role: str, attributes: dict[str, bool]) -> None:
    powers = [name for name in ("superuser", "replication", "bypassrls") if attributes[name]]
    if powers:
        raise PostgresWarehouseError(
            f"role {role} is {' and '.join(p.upper() for p in powers)}: it bypasses "
            "privileges (or row security, or reads the whole cluster by replication), so it "
            "cannot be a read-only BI role; choose another name, or have a superuser run "
            f'ALTER ROLE "{role}" ' + " ".join(f"NO{p.upper()}" for p in powers)
            + " first. Nothing was changed"
        )


def _ensure_role(cur, role_id: sql.Identifier, attributes: dict[str, bool] | None,
                 password: str | None) -> tuple[str, ...]:
    """Create the role, or change only the attributes that differ from a read-only role's.

    Naming an attribute the role already has is not harmless: Postgres lets only a
    superuser mention SUPERUSER, REPLICATION or BYPASSRLS in ALTER ROLE, even to switch
    them off, so a CREATEROLE user could not run this twice.
    """
    secret = None if password is None else scram_sha256_verifier(password)
    if attributes is None:
        login = "login" if password is not None else "nologin"
        statement = sql.SQL("create role {} " + login + " nosuperuser nocreatedb "
                            "nocreaterole noreplication nobypassrls").format(role_id)
        if secret is None:
            cur.execute(statement)
        else:
            cur.execute(statement + sql.SQL(" password %s"), [secret])
        return ()
    changes = [f"no{name}" for name in ("createdb", "createrole") if attributes[name]]
    if password is not None and not attributes["login"]:
        changes.append("login")
    statement = sql.SQL(" ").join([sql.SQL("alter role"), role_id,
                                   *(sql.SQL(change) for change in changes)])
    if secret is not None:
        cur.execute(statement + sql.SQL(" password %s"), [secret])
    elif changes:
        cur.execute(statement)
    return tuple(changes)


def grant_bi_role(pg_conn, role: str, password: str | None = None,
                  revoke_memberships: bool = False) -> BiRoleGrant:
    """Create or update a read-only role for BI tools: SELECT on `reporting`, nothing else.

    With a password the role logs in; without one it is created NOLOGIN, a group to grant
    to people's own logins (an existing role keeps its login). Views dbt creates later in
    `reporting` are readable too (default privileges of the user running this, who should
    be the user dbt runs as). Every other q2c schema is closed to the role.

    A role that is a member of a role with rights in q2c's schemas (the table owner's, for
    one) would keep them: such memberships are refused, or revoked when asked. The last
    step checks what the role can effectively do, inherited rights and PUBLIC's included,
    and undoes everything if it can do more than read `reporting`.
    """
    if role.startswith("pg_"):
        raise PostgresWarehouseError(
            f"role {role}: names starting with pg_ belong to Postgres' predefined roles; "
            "choose another name for the read-only BI role, e.g. q2c_bi"
        )
    role_id = sql.Identifier(role)
    try:
        with pg_conn.cursor() as cur:
            attributes = _role_attributes(cur, role)
            if attributes is not None:
                _refuse_privileged_role(role, attributes)
            revoked = (_resolve_memberships(cur, role, role_id, revoke_memberships)
                       if attributes is not None else ())
            changed = _ensure_role(cur, role_id, attributes, password)
            cur.execute("select rolcanlogin from pg_roles where rolname = %s", [role])
            can_login = cur.fetchone()[0]
            cur.execute(sql.SQL("alter role {} set default_transaction_read_only = on")
                        .format(role_id))
            cur.execute(sql.SQL("grant connect on database {} to {}").format(
                sql.Identifier(pg_conn.info.dbname), role_id))
            _open_reporting(cur, role_id)
            closed = _close_private_schemas(cur, role_id)
            readable, unreadable = _verify_read_only(cur, role)
        pg_conn.commit()
    except BaseException:
        pg_conn.rollback()
        raise
    log.info("BI role %s: select on %d relations in %s; closed: %s", role, len(readable),
             REPORTING_SCHEMA, ", ".join(closed))
    if unreadable:
        log.warning("BI role %s cannot read %s: owned by another role than the one running "
                    "this; run grant-bi-role as the user dbt runs as", role,
                    ", ".join(unreadable))
    return BiRoleGrant(role, attributes is None, can_login, readable, closed, changed,
                       revoked, unreadable)


def _open_reporting(cur, role_id: sql.Identifier) -> None:
    schema = sql.Identifier(REPORTING_SCHEMA)
    cur.execute(sql.SQL("create schema if not exists {}").format(schema))
    cur.execute(sql.SQL("revoke create on schema {} from {}").format(schema, role_id))
    cur.execute(sql.SQL("grant usage on schema {} to {}").format(schema, role_id))
    cur.execute(sql.SQL("revoke insert, update, delete, truncate, references, trigger on all "
                        "tables in schema {} from {}").format(schema, role_id))
    cur.execute(sql.SQL("grant select on all tables in schema {} to {}").format(schema,
                                                                              role_id))
    cur.execute(sql.SQL("alter default privileges in schema {} grant select on tables to {}")
                .format(schema, role_id))


def _close_private_schemas(cur, role_id: sql.Identifier) -> tuple[str, ...]:
    cur.execute("select nspname from pg_namespace where starts_with(nspname, %s) "
                "or nspname = any(%s) order by nspname",
                [RAW_SCHEMA_PREFIX, list(PRIVATE_SCHEMAS)])
    schemas = tuple(name for (name,) in cur.fetchall())
    for name in schemas:
        schema = sql.Identifier(name)
        cur.execute(sql.SQL("revoke all on all tables in schema {} from {}").format(
            schema, role_id))
        cur.execute(sql.SQL("alter default privileges in schema {} revoke all on tables "
                            "from {}").format(schema, role_id))
        cur.execute(sql.SQL("revoke all on schema {} from {}").format(schema, role_id))
    return schemas


def _verify_read_only(cur, role: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Check the role's effective rights (not only the grants made here); refuse any excess.

    Returns the `reporting` relations it can read and those it cannot.
    """
    excess = [f"{role} {right.describe()}" for right in role_rights(cur, role)]
    for path in role_memberships(cur, role):
        excess += [f"{role} → {' → '.join(path)} {right.describe()}"
                   for right in role_rights(cur, path[-1]) if not right.public]
    if excess:
        raise PostgresWarehouseError(
            f"role {role} could still do more than read {REPORTING_SCHEMA}: "
            + _summary(excess, 8) + ". Revoke these rights where they were granted (from "
            "PUBLIC, from the role, or the memberships shown; REASSIGN OWNED for objects it "
            "owns) and run grant-bi-role again. Nothing was changed"
        )
    cur.execute("select c.relname, has_table_privilege(%s, c.oid, 'SELECT') from pg_class c "
                "join pg_namespace n on n.oid = c.relnamespace where n.nspname = %s "
                "and c.relkind in ('r', 'v', 'm', 'p', 'f') order by c.relname",
                [role, REPORTING_SCHEMA])
    rows = cur.fetchall()
    return (tuple(name for name, ok in rows if ok), tuple(name for name, ok in rows if not ok))
