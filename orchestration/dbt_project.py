"""The dbt project as Dagster sees it, with a manifest that is never stale.

dagster-dbt builds one asset per model from `target/manifest.json`. A fresh clone has none,
and an edited model makes it stale, so the manifest is parsed again whenever a file of the
project is newer than it. That costs one `dbt parse` (a few seconds) only after a change.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from functools import cache
from pathlib import Path

from dagster_dbt import DbtProject

from orchestration.resources import dbt_environment, dbt_source_vars
from q2c.settings import PROJECT_ROOT, load_settings

DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"
DBT_EXECUTABLE = Path(sys.executable).parent / "dbt"
_SOURCE_FOLDERS = ("models", "macros", "seeds", "tests", "snapshots")


def _newest_source_mtime(project_dir: Path) -> float:
    paths = [project_dir / "dbt_project.yml", project_dir / "profiles.yml"]
    for folder in _SOURCE_FOLDERS:
        paths.extend(p for p in (project_dir / folder).rglob("*") if p.is_file())
    return max((p.stat().st_mtime for p in paths if p.exists()), default=0.0)


def ensure_manifest(project_dir: Path = DBT_PROJECT_DIR) -> Path:
    """Parse the dbt project when its manifest is missing, older than any project file, or
    parsed for another set of enabled sources (a disabled source's models are not in it)."""
    manifest = project_dir / "target" / "manifest.json"
    settings = load_settings()
    source_vars = json.dumps(dbt_source_vars(settings), sort_keys=True)
    parsed_for = project_dir / "target" / "q2c_source_vars.json"
    if (
        manifest.exists()
        and manifest.stat().st_mtime >= _newest_source_mtime(project_dir)
        and parsed_for.exists()
        and parsed_for.read_text() == source_vars
    ):
        return manifest
    env = os.environ | dbt_environment(settings)
    result = subprocess.run(
        [str(DBT_EXECUTABLE), "parse", "--quiet", "--project-dir", str(project_dir),
         "--profiles-dir", str(project_dir), "--vars", source_vars],
        cwd=project_dir, env=env, capture_output=True, text=True, check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"`dbt parse` failed in {project_dir}; fix the dbt project and retry:\n"
            f"{result.stdout[-4000:]}{result.stderr[-2000:]}"
        )
    parsed_for.write_text(source_vars)
    return manifest


@cache
def q2c_dbt_project() -> DbtProject:
    ensure_manifest()
    return DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)
