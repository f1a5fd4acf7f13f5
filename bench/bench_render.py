"""2,000 invoices of 1 to 5 pages through the render pool, beside a bare WeasyPrint loop.

Both sides render the same invoices with as many processes as the pool has workers, in the
same run, in alternating rounds, so a change in the machine's load falls on both alike.
The pool's time is end to end: worker start-up, planning against the document manifest,
HTML from the template, PDF, writing the store and the manifest. The bare loop is plain
WeasyPrint over the finished HTML of the same invoices, `HTML(string=..., base_url=...)`
laid out and written to PDF bytes that are thrown away (what `write_pdf()` does), counting
the pages on the way. It gets the same longest-first order and chunking, so the ratio
measures the pool's own cost and gains, not a scheduling accident.

Then the batch is planned and rendered again with nothing changed, which must render
nothing. Peak memory per worker is each worker's own `ru_maxrss`. Everything renders from
a copy of `content/` taken at the start, so editing content during the run cannot stop it.

Q2C_BENCH_RENDER_INVOICES shrinks the batch for a quick check (default 2,000).
"""

from __future__ import annotations

import datetime as dt
import os
import random
import resource
import shutil
import sys
import tempfile
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path

INVOICES = int(os.environ.get("Q2C_BENCH_RENDER_INVOICES", "2000"))
ROUNDS = 10
MAX_PAGES = 5
RATIO_TARGET = 0.9
RERUN_TARGET = 0.05
PEAK_MIB_TARGET = 512
SEED = 2026

# (language, locale, currency, tax percent): the locales the invoice labels are written in.
_LOCALES = [
    ("de", "de_DE", "EUR", Decimal(19)),
    ("en", "en_GB", "GBP", Decimal(20)),
    ("fr", "fr_FR", "EUR", Decimal(20)),
    ("en", "en_US", "USD", Decimal(0)),
    ("ja", "ja_JP", "JPY", Decimal(10)),
    ("nl", "nl_NL", "EUR", Decimal(21)),
]
_ITEMS = [
    ("Platform subscription", Decimal("4900.00")),
    ("Connector pack", Decimal("250.00")),
    ("Premium support", Decimal("690.00")),
    ("Consulting hour", Decimal("165.00")),
    ("Training day", Decimal("1200.00")),
    ("API calls (per 1,000)", Decimal("0.0125")),
]


def _invoice(number: int, line_count: int, rng: random.Random):
    """An invoice with `line_count` item lines whose totals add up the way the ERP's do."""
    from q2c.documents.model import Buyer, InvoiceDocument, InvoiceLine, TaxBreakdown
    from q2c.money import Money, money_sum
    from q2c.settings import Seller

    language, locale, currency, rate = _LOCALES[number % len(_LOCALES)]
    issued = dt.date(2026, 1, 1) + dt.timedelta(days=number % 330)
    lines = []
    for index in range(1, line_count + 1):
        name, price = _ITEMS[rng.randrange(len(_ITEMS))]
        quantity = Decimal(rng.randint(1, 40))
        # One text line per row, so the page count follows the line count.
        lines.append(InvoiceLine(
            index=index, description=f"{name}, {issued:%m/%Y}", quantity=quantity,
            unit_price=price, amount=Money(quantity * price, currency),
        ))
    net = money_sum([line.amount for line in lines], currency)
    tax = Money(net.amount * rate / 100, currency)
    total = net + tax
    paid = Money(total.amount / 2, currency) if number % 4 == 0 else Money.zero(currency)
    zero = Money.zero(currency)
    return InvoiceDocument(
        invoice_id=f"bench-{number:05d}", invoice_number=f"INV-2026-{number:06d}",
        issue_date=issued, due_date=issued + dt.timedelta(days=30), currency=currency,
        language=language, locale=locale, seller=Seller(),
        buyer=Buyer(name=f"Customer {number % 97} GmbH",
                    address_lines=("Industriestraße 12", "70565 Stuttgart"), country="DE",
                    vat_id="DE129273398", email="ap@customer.example"),
        lines=tuple(lines), tax_breakdown=(TaxBreakdown(rate, net, tax),), subtotal=net,
        discount=zero, tax_total=tax, total=total, amount_paid=paid, amount_credited=zero,
        balance_due=total - paid, payment_term_days=30,
        payment_reference=f"INV-2026-{number:06d}",
    )


class _Pages:
    """Pages of an invoice of n lines in one locale, laid out once per n."""

    def __init__(self, content, locale: int) -> None:
        from weasyprint import HTML

        from q2c.documents.render import render_html

        base_url = content.root.as_uri() + "/"
        self._pages = lambda n: len(HTML(
            string=render_html(_invoice(locale, n, random.Random(n)), content)[0],
            base_url=base_url,
        ).render().pages)
        self._known: dict[int, int] = {}

    def __call__(self, lines: int) -> int:
        if lines not in self._known:
            self._known[lines] = self._pages(lines)
        return self._known[lines]

    def most_lines_on(self, pages: int, low: int, step: int) -> int:
        """The largest line count that still fits on `pages` pages (`low` does)."""
        high = low + step
        while self(high) <= pages:
            low, high, step = high, high + step, step * 2
        while high - low > 1:
            middle = (low + high) // 2
            low, high = (middle, high) if self(middle) <= pages else (low, middle)
        return low


def _line_ranges(content) -> dict[int, tuple[int, int]]:
    """Pages to line counts well inside the range that lays out on that many pages.

    Laid out in the first locale; the labels of the others move a page break by a line or
    two, so a fifth of each range is left out at both ends.
    """
    pages, ranges, first, step = _Pages(content, 0), {}, 1, 8
    for count in range(1, MAX_PAGES + 1):
        last = pages.most_lines_on(count, first, step)
        margin = (last - first) // 5
        ranges[count] = (first + margin, last - margin)
        first, step = last + 1, max(4, last - first)
    return ranges


_bare: dict = {}


def _bare_init(base_url: str) -> None:
    from weasyprint import HTML

    _bare.update(html=HTML, base_url=base_url)


def _bare_render(html: str) -> tuple[int, int, int]:
    """Render with plain WeasyPrint; return pages, pid and this process's peak memory."""
    document = _bare["html"](string=html, base_url=_bare["base_url"]).render()
    document.write_pdf()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return len(document.pages), os.getpid(), peak


class _BareLoop:
    """Plain WeasyPrint in `workers` processes, started on first use (inside the timing)."""

    def __init__(self, workers: int, base_url: str) -> None:
        self.workers, self.base_url, self._pool = workers, base_url, None
        self.pages: Counter = Counter()
        self.peaks: dict[int, int] = {}

    def render(self, htmls: list[str]) -> None:
        import multiprocessing

        if self._pool is None:
            context = multiprocessing.get_context("forkserver")
            self._pool = context.Pool(self.workers, _bare_init, (self.base_url,))
        ordered = sorted(htmls, key=len, reverse=True)
        chunksize = max(1, min(8, len(ordered) // (self.workers * 16)))
        for pages, pid, peak in self._pool.imap_unordered(_bare_render, ordered, chunksize):
            self.pages[pages] += 1
            self.peaks[pid] = max(peak, self.peaks.get(pid, 0))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool.join()


def main() -> int:
    from q2c.content.registry import DEFAULT_CONTENT_DIR, load_registry
    from q2c.documents.pool import (
        RenderPool,
        default_workers,
        manifest_input_hashes,
        plan_batch,
        record_manifest,
        render_batch,
    )
    from q2c.documents.render import render_html, resolve_content
    from q2c.warehouse import connect

    workers = default_workers()
    home = Path(tempfile.mkdtemp(prefix="q2c-bench-render-"))
    content_dir = shutil.copytree(DEFAULT_CONTENT_DIR, home / "content")
    content = load_registry(content_dir)
    used = resolve_content(content)
    ranges = _line_ranges(content)
    rng = random.Random(SEED)
    docs = [_invoice(n, rng.randint(*ranges[n % MAX_PAGES + 1]), rng) for n in range(INVOICES)]
    htmls = [render_html(doc, content, used=used)[0] for doc in docs]

    store = home / "documents"
    pool_seconds = bare_seconds = 0.0
    bare = _BareLoop(workers, content.root.as_uri() + "/")
    pool = RenderPool(workers=workers, content_dir=content_dir)  # its workers start on use
    try:
        with connect(home / "warehouse.duckdb") as conn:
            for number in range(ROUNDS):
                part = slice(number, None, ROUNDS)  # every round gets the same mix of pages
                for side in ("pool", "bare") if number % 2 == 0 else ("bare", "pool"):
                    started = time.perf_counter()
                    if side == "bare":
                        bare.render(htmls[part])
                        bare_seconds += time.perf_counter() - started
                        continue
                    known = manifest_input_hashes(conn)
                    to_render, _ = plan_batch(docs[part], known, content=content)
                    result = pool.render(to_render, store, used=used)
                    record_manifest(conn, result.rendered, run_id=f"bench-{number}")
                    pool_seconds += time.perf_counter() - started
                    if result.failed:
                        print(f"{len(result.failed)} invoices failed: "
                              f"{result.failed[0].error}", file=sys.stderr)
                        return 1

            started = time.perf_counter()
            to_render, unchanged = plan_batch(docs, manifest_input_hashes(conn), content=content)
            rendered_again = render_batch(to_render, store, workers=workers,
                                          content_dir=content_dir)
            rerun_seconds = time.perf_counter() - started
    finally:
        bare.close()
        pool.close()
        shutil.rmtree(home, ignore_errors=True)
    if rendered_again or len(unchanged) != INVOICES:
        print(f"the rerun rendered {len(rendered_again)} invoices; expected none",
              file=sys.stderr)
        return 1

    pool_rate, bare_rate = INVOICES / pool_seconds, INVOICES / bare_seconds
    pages = "/".join(str(bare.pages[count]) for count in range(1, MAX_PAGES + 1))
    other_pages = INVOICES - sum(bare.pages[count] for count in range(1, MAX_PAGES + 1))
    print(f"bench render_{INVOICES}: {pool_rate / bare_rate:.2f} (target >= {RATIO_TARGET}; "
          f"pool {pool_rate:.1f} invoices/s, bare WeasyPrint {bare_rate:.1f} invoices/s, "
          f"{workers} processes each; invoices of 1/2/3/4/5 pages: {pages}"
          + (f", {other_pages} of other lengths" if other_pages else "") + ")")
    print(f"bench render_rerun: {rerun_seconds / pool_seconds:.4f} (target < {RERUN_TARGET}; "
          f"rerun with nothing changed {rerun_seconds:.2f} s, full run {pool_seconds:.1f} s)")
    peak = max(pool.worker_peak_bytes.values()) / 2**20
    bare_peak = max(bare.peaks.values()) / 2**20
    print(f"bench render_worker_peak_mib: {peak:.0f} (target <= {PEAK_MIB_TARGET}; "
          f"bare WeasyPrint workers {bare_peak:.0f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
