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

import logging
import os
import re
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import psycopg2
import yaml
from psycopg2 import sql

from q2c.settings import PROJECT_ROOT
from q2c.warehouse import OPS_SCHEMA, connect

log = logging.getLogger(__name__)

RAW_SCHEMA_PREFIX = "raw_"
REPORTING_SCHEMA = "reporting"
# Schemas q2c and dbt write besides `reporting`: a BI role gets nothing in them.
PRIVATE_SCHEMAS = ("staging", "intermediate", "core", "kpi", "delivery", OPS_SCHEMA)
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


def _duck_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _tables_to_copy(duck_conn, ops_tables: Iterable[str]) -> list[tuple[str, str]]:
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
                    "it fail on Postgres until it is)", OPS_SCHEMA, name)
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


def _prepare_table(cur, schema: str, name: str, columns: list[tuple[str, str]]) -> str:
    """Empty the Postgres table when its columns match; else (re)create it."""
    table = sql.Identifier(schema, name)
    existing = _pg_columns(cur, schema, name)
    if existing == columns:
        cur.execute(sql.SQL("truncate table {}").format(table))
        return "replaced"
    action = "created"
    if existing:
        log.warning("%s.%s changed shape in DuckDB; recreating it on Postgres (views "
                    "built on it are dropped until the next dbt build)", schema, name)
        cur.execute(sql.SQL("drop table {} cascade").format(table))
        action = "recreated"
    cur.execute(sql.SQL("create table {} ({})").format(table, sql.SQL(", ").join(
        sql.SQL("{} {}").format(sql.Identifier(column), sql.SQL(kind))
        for column, kind in columns
    )))
    return action


def _copy_table(duck_conn, cur, schema: str, name: str, folder: Path) -> CopiedTable:
    columns = _duck_columns(duck_conn, schema, name)
    export = folder / f"{schema}.{name}.csv"
    # Every value is quoted, so an unquoted empty field is a NULL and "" an empty text.
    duck_conn.execute(
        f"copy (select * from {_duck_ident(schema)}.{_duck_ident(name)}) "
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
    """Copy the raw schemas and q2c_ops source tables from DuckDB, in one transaction."""
    check_database_locale(pg_conn)
    ops_tables = ops_source_tables() if ops_tables is None else tuple(ops_tables)
    copied: list[CopiedTable] = []
    with connect(Path(warehouse_path), read_only=True) as duck_conn, \
            tempfile.TemporaryDirectory(prefix="q2c-push-") as folder:
        tables = _tables_to_copy(duck_conn, ops_tables)
        if not any(schema.startswith(RAW_SCHEMA_PREFIX) for schema, _ in tables):
            raise PostgresWarehouseError(
                f"no raw_<source> tables in {warehouse_path}: run the ingest (`q2c run`) "
                "before pushing the warehouse to Postgres"
            )
        try:
            with pg_conn.cursor() as cur:
                for schema in sorted({schema for schema, _ in tables}):
                    cur.execute(sql.SQL("create schema if not exists {}").format(
                        sql.Identifier(schema)))
                for schema, name in tables:
                    table = _copy_table(duck_conn, cur, schema, name, Path(folder))
                    log.info("%s: %d rows copied to Postgres (%s)", table.relation,
                             table.rows, table.action)
                    copied.append(table)
            pg_conn.commit()
        except BaseException:
            pg_conn.rollback()
            raise
    return copied


@dataclass(frozen=True)
class BiRoleGrant:
    """What grant_bi_role did: the role, whether it was new, whether it can log in."""

    role: str
    created: bool
    can_login: bool
    readable: tuple[str, ...]
    closed_schemas: tuple[str, ...]


def grant_bi_role(pg_conn, role: str, password: str | None = None) -> BiRoleGrant:
    """Create or update a read-only role for BI tools: SELECT on `reporting`, nothing else.

    With a password the role logs in; without one it is created NOLOGIN, a group to grant
    to people's own logins (an existing role keeps its login). Views dbt creates later in
    `reporting` are readable too (default privileges of the user running this, who should
    be the user dbt runs as). Every other q2c schema is closed to the role.
    """
    role_id = sql.Identifier(role)
    try:
        with pg_conn.cursor() as cur:
            cur.execute("select rolsuper, rolcanlogin from pg_roles where rolname = %s",
                        [role])
            existing = cur.fetchone()
            if existing and existing[0]:
                raise PostgresWarehouseError(
                    f"role {role} is a superuser and can read everything; choose another "
                    "name for the read-only BI role"
                )
            _ensure_role(cur, role_id, existing is not None, password)
            cur.execute("select rolcanlogin from pg_roles where rolname = %s", [role])
            can_login = cur.fetchone()[0]
            cur.execute(sql.SQL("alter role {} set default_transaction_read_only = on")
                        .format(role_id))
            cur.execute(sql.SQL("grant connect on database {} to {}").format(
                sql.Identifier(pg_conn.info.dbname), role_id))
            readable = _open_reporting(cur, role_id)
            closed = _close_private_schemas(cur, role_id)
        pg_conn.commit()
    except BaseException:
        pg_conn.rollback()
        raise
    log.info("BI role %s: select on %d relations in %s; closed: %s", role, len(readable),
             REPORTING_SCHEMA, ", ".join(closed))
    return BiRoleGrant(role, existing is None, can_login, readable, closed)


def _ensure_role(cur, role_id: sql.Identifier, exists: bool, password: str | None) -> None:
    limits = sql.SQL("nosuperuser nocreatedb nocreaterole noreplication nobypassrls")
    if password is not None:
        verb = "alter" if exists else "create"
        cur.execute(sql.SQL(verb + " role {} login {} password %s").format(role_id, limits),
                    [password])
    elif exists:
        cur.execute(sql.SQL("alter role {} {}").format(role_id, limits))
    else:
        cur.execute(sql.SQL("create role {} nologin {}").format(role_id, limits))


def _open_reporting(cur, role_id: sql.Identifier) -> tuple[str, ...]:
    schema = sql.Identifier(REPORTING_SCHEMA)
    cur.execute(sql.SQL("create schema if not exists {}").format(schema))
    cur.execute(sql.SQL("grant usage on schema {} to {}").format(schema, role_id))
    cur.execute(sql.SQL("grant select on all tables in schema {} to {}").format(schema,
                                                                              role_id))
    cur.execute(sql.SQL("alter default privileges in schema {} grant select on tables to {}")
                .format(schema, role_id))
    cur.execute("select c.relname from pg_class c join pg_namespace n on n.oid = "
                "c.relnamespace where n.nspname = %s and c.relkind in ('r', 'v', 'm', 'p') "
                "order by c.relname", [REPORTING_SCHEMA])
    return tuple(name for (name,) in cur.fetchall())


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
