"""The warehouse on Apache Spark: load the raw layer from DuckDB into a Spark metastore.

Ingest lands raw tables in the DuckDB warehouse. To build the marts on Spark,
`load_into_spark` copies the `raw_<source>` schemas and the `q2c_ops` tables dbt reads as
sources into Spark databases of the same names (through Parquet, so every column keeps its
type: raw values stay text, money stays decimal), and dbt runs with `--target spark`.

The Spark session is the one dbt-spark's `session` method uses: a local master with its
Hive metastore (Derby) and table files under Q2C_SPARK_HOME. Its settings are read from the
`spark` target of dbt_project/profiles.yml, so the loader and dbt see the same metastore.
Derby admits one process at a time: load, then run dbt, not both at once. On a cluster the
same tables are loaded with the cluster's own tools and dbt connects by thrift or http.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import yaml

from q2c.settings import PROJECT_ROOT
from q2c.warehouse import connect
from q2c.warehouse_postgres import duck_ident, ops_source_tables, tables_to_copy

log = logging.getLogger(__name__)

PROFILES_PATH = PROJECT_ROOT / "dbt_project" / "profiles.yml"
SPARK_HOME_VARIABLE = "Q2C_SPARK_HOME"


class SparkWarehouseError(RuntimeError):
    """The Spark warehouse cannot be set up or loaded as asked."""


@dataclass(frozen=True)
class LoadedTable:
    """One table loaded into Spark, with its row count."""

    schema: str
    name: str
    rows: int

    @property
    def relation(self) -> str:
        return f"{self.schema}.{self.name}"


def spark_home(env: Mapping[str, str] | None = None, q2c_home: Path | None = None) -> Path:
    """Q2C_SPARK_HOME, else `spark/` under the q2c home: where metastore and tables live."""
    env = os.environ if env is None else env
    if env.get(SPARK_HOME_VARIABLE):
        return Path(env[SPARK_HOME_VARIABLE]).expanduser().resolve()
    if q2c_home is None:
        raise SparkWarehouseError(
            f"{SPARK_HOME_VARIABLE} is not set: export it as the folder for the Spark "
            "metastore and table files (dbt's `spark` target reads it too)"
        )
    return (Path(q2c_home) / "spark").resolve()


def session_config(home: Path, profiles_path: Path = PROFILES_PATH) -> dict[str, str]:
    """The Spark settings of the `spark` target in profiles.yml, for a metastore at `home`.

    Each setting is rendered with Q2C_SPARK_HOME set to `home`.
    """
    def env_var(name: str, default: str | None = None) -> str:
        if name == SPARK_HOME_VARIABLE:
            return str(home)
        value = os.environ.get(name, default)
        if value is None:
            raise SparkWarehouseError(f"{profiles_path}: the spark target reads {name}, "
                                      "which is not set; export it")
        return value

    outputs = (yaml.safe_load(profiles_path.read_text()) or {}).get("q2c", {}).get("outputs")
    target = (outputs or {}).get("spark")
    if not target or target.get("method") != "session":
        raise SparkWarehouseError(
            f"{profiles_path} has no `spark` target with method `session`; q2c loads only "
            "into a Spark it starts itself"
        )
    environment = jinja2.Environment(undefined=jinja2.StrictUndefined)
    return {str(key): environment.from_string(str(value)).render(env_var=env_var)
            for key, value in (target.get("server_side_parameters") or {}).items()}


def spark_session(home: Path, log_level: str = "WARN") -> Any:
    """The Spark session of dbt's `spark` target, started (or reused) in this process."""
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:
        raise SparkWarehouseError(
            "pyspark is not installed: install q2c with its Spark extra "
            "(pip install -e '.[spark]'); Java 17 must be on the PATH"
        ) from exc
    home.mkdir(parents=True, exist_ok=True)
    # The driver binds to loopback (profiles.yml); this also stops Spark looking up the
    # machine's outside address for anything else.
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    config = session_config(home)
    builder = SparkSession.builder.enableHiveSupport()
    for key, value in config.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    _refuse_another_metastore(session, config.get("spark.sql.warehouse.dir"))
    session.sparkContext.setLogLevel(log_level)
    _quiet_session_reuse(session)
    return session


def _refuse_another_metastore(session, expected: str | None) -> None:
    """A session already running in this process keeps the folder it started with."""
    actual = session.conf.get("spark.sql.warehouse.dir")
    if expected and Path(actual.removeprefix("file:")) != Path(expected):
        raise SparkWarehouseError(
            f"this process already runs Spark on {actual}, not {expected}; Spark keeps one "
            f"metastore per process: run q2c again with {SPARK_HOME_VARIABLE} at the first"
        )


def _quiet_session_reuse(session) -> None:
    """dbt-spark asks for the session again before every statement, and Spark warns each
    time that the existing one is used; that warning says nothing here."""
    jvm = session.sparkContext._jvm
    jvm.org.apache.logging.log4j.core.config.Configurator.setLevel(
        "org.apache.spark.sql.SparkSession", jvm.org.apache.logging.log4j.Level.ERROR)


def _spark_ident(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _export(duck_conn, schema: str, name: str, folder: Path) -> tuple[Path, int]:
    path = folder / schema / f"{name}.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    relation = f"{duck_ident(schema)}.{duck_ident(name)}"
    duck_conn.execute(
        f"copy (select * from {relation}) to '{str(path).replace(chr(39), chr(39) * 2)}' "
        "(format parquet)"
    )
    rows = duck_conn.execute(f"select count(*) from {relation}").fetchone()[0]
    return path, rows


def _with_session_timestamps(frame):
    """DuckDB's timestamps (no zone) as Spark's timestamp type, the one dbt-spark's date
    macros expect; the session's time zone is UTC, so every value keeps its wall clock."""
    from pyspark.sql import functions
    from pyspark.sql.types import TimestampNTZType, TimestampType

    return frame.select([
        functions.col(_spark_ident(field.name)).cast(TimestampType()).alias(field.name)
        if isinstance(field.dataType, TimestampNTZType) else functions.col(_spark_ident(field.name))
        for field in frame.schema.fields
    ])


def load_into_spark(
    warehouse_path: Path, spark, ops_tables: Iterable[str] | None = None
) -> list[LoadedTable]:
    """Copy the raw schemas and the q2c_ops source tables from DuckDB into Spark.

    Each table replaces the Spark table of the same name. Spark has no transaction across
    tables: a failed load leaves the tables before it loaded; run it again.
    """
    ops_tables = ops_source_tables() if ops_tables is None else tuple(ops_tables)
    loaded: list[LoadedTable] = []
    folder = Path(tempfile.mkdtemp(prefix="q2c-spark-load-"))
    try:
        with connect(Path(warehouse_path), read_only=True) as duck_conn:
            exported = [(schema, name, *_export(duck_conn, schema, name, folder))
                        for schema, name in tables_to_copy(duck_conn, ops_tables, "Spark")]
        for schema in sorted({schema for schema, *_ in exported}):
            spark.sql(f"create database if not exists {_spark_ident(schema)}")
        for schema, name, path, rows in exported:
            frame = _with_session_timestamps(spark.read.parquet(str(path)))
            frame.write.mode("overwrite").format("parquet").saveAsTable(
                f"{_spark_ident(schema)}.{_spark_ident(name)}")
            log.info("loaded %s.%s into Spark: %d rows", schema, name, rows)
            loaded.append(LoadedTable(schema, name, rows))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return loaded
