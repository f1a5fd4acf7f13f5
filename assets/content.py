"""Content: one asset per configured CMS source (`cms_sources`), its versions in the store.

Each run follows the source's changes since its cursor and then reconciles every item q2c
knows (`q2c.content.cms.sync`). A source that is down, slow or rate-limiting does not fail
the run: the asset is materialized with `unavailable: yes` and why, and the last approved
content stays in force. The metadata also counts the documents that used each CMS version
(from the document manifest), so what a customer received can be traced to its CMS item.
"""

import datetime as dt
import json
from collections import Counter

import dagster as dg
import duckdb

from orchestration.jobs import NETWORK_RETRY
from orchestration.resources import Q2CSettings
from q2c.content.cms import build_cms_connector
from q2c.content.cms.store import CmsStore
from q2c.content.cms.sync import sync_and_reconcile
from q2c.settings import Settings, load_settings
from q2c.warehouse import OPS_SCHEMA, WarehouseBusyError, connect

CONTENT_GROUP = "content"


def cms_asset_key(source: str) -> dg.AssetKey:
    return dg.AssetKey([CONTENT_GROUP, f"cms_{source}"])


class CmsRunConfig(dg.Config):
    """`reconcile`: also fetch every known item, not only what changed (the default)."""

    reconcile: bool = True


def documents_by_cms_version(settings: Settings, source: str) -> dict[str, int] | str:
    """Documents in the manifest per CMS version of `source` they used, or why unknown."""
    if not settings.warehouse_path.is_file():
        return "no warehouse yet"
    try:
        with connect(settings.warehouse_path, read_only=True) as conn:
            rows = conn.execute(
                f"select content_selection from {OPS_SCHEMA}.document_manifest "
                "where cast(content_selection as varchar) like ?",
                [f'%"source":"{source}"%'],
            ).fetchall()
    except (duckdb.Error, WarehouseBusyError) as exc:
        return f"not read: {exc}"
    counts: Counter[str] = Counter()
    for (text,) in rows:
        record = json.loads(text) if isinstance(text, str) else (text or {})
        for choice in record.get("choices", ()):
            cms = choice.get("cms")
            if cms and cms.get("source") == source:
                counts[
                    f"{choice['id']} v{choice['version']} (item {cms['external_id']}, "
                    f"{cms['locale']}, version {cms['source_version']}, sha256 "
                    f"{str(cms['sha256'])[:12]})"
                ] += 1
    return dict(sorted(counts.items()))


def _build_cms_asset(source: str) -> dg.AssetsDefinition:
    @dg.asset(
        key=cms_asset_key(source),
        group_name=CONTENT_GROUP,
        kinds={source},
        retry_policy=NETWORK_RETRY,
        description=(
            f"Message blocks and legal texts from {source}: every version q2c fetched, "
            "sanitized and pinned by SHA-256 in the CMS store; approved ones are in the "
            "content registry. Syncs changes since the cursor, then reconciles every known "
            "item; a source that cannot be reached keeps the last approved content in force."
        ),
    )
    def cms_content(context: dg.AssetExecutionContext, config: CmsRunConfig,
                    q2c: Q2CSettings) -> dg.MaterializeResult:
        settings = q2c.load()
        store = CmsStore.from_settings(settings)
        connector = build_cms_connector(source, settings)
        results = sync_and_reconcile(connector, store, dt.datetime.now(dt.UTC),
                                     reconcile_all=config.reconcile)
        for result in results:
            if result.unavailable:
                context.log.warning(result.summary())
            else:
                context.log.info(result.summary())
        down = next((r for r in results if r.unavailable), None)
        last = results[-1]
        problems = [text for result in results for text in result.problems]
        return dg.MaterializeResult(
            metadata={
                "status": "unavailable" if down else "ok",
                "unavailable": f"yes: {down.error}" if down else "no",
                "new_versions": sum(r.new_versions for r in results),
                "approved": sum(r.approved for r in results),
                "retired": sum(r.retired for r in results),
                "items_checked": sum(r.checked for r in results),
                "versions_draft": last.by_status.get("draft", 0),
                "versions_approved": last.by_status.get("approved", 0),
                "versions_retired": last.by_status.get("retired", 0),
                "problems": dg.MetadataValue.json(problems),
                "documents_by_cms_version": dg.MetadataValue.json(
                    documents_by_cms_version(settings, source)
                ),
                "body_store": dg.MetadataValue.path(str(store.body_dir / source)),
            }
        )

    return cms_content


def build_cms_assets(sources: tuple[str, ...]) -> list[dg.AssetsDefinition]:
    """One asset per configured CMS source; none when `cms_sources` is empty."""
    return [_build_cms_asset(source) for source in sources]


cms_assets = build_cms_assets(load_settings().cms_sources)
