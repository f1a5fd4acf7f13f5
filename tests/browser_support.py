"""Driving Debian's Chromium with Playwright: launching it, keeping a screenshot of every step,
scanning every page with axe-core, and moving by keyboard alone.

Chromium is the system's (`/usr/bin/chromium`, installed by scripts/install-system-packages.sh),
never a browser Playwright downloads. Playwright launches it headless with its default
`chromiumSandbox=False`, which is what lets it run as root.

`StepRecorder` numbers the steps of a test: `record(page, name)` saves a full-page screenshot
as `<folder>/<NN>-<name>.png` and runs axe-core (bundled by axe-playwright-python) on the
page; `serious_violations()` lists what the scans found at the impact levels a page must not
have. axe is evaluated through the DevTools protocol, so the portal's script-free
Content-Security-Policy stays on while it runs.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, Page, Playwright

CHROMIUM = Path("/usr/bin/chromium")
# axe-core's impact levels that fail a page; "minor" and "moderate" are reported only.
FAILING_IMPACTS = frozenset({"serious", "critical"})
PHONE_WIDTH = 375
_AXE = Axe()


def launch_chromium(playwright: Playwright) -> Browser:
    """Debian's Chromium, headless; a clear failure when it is not installed."""
    if not CHROMIUM.is_file():
        raise RuntimeError(f"{CHROMIUM} is missing: run scripts/install-system-packages.sh "
                           "(it installs Debian's chromium package)")
    return playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)


@dataclass(frozen=True)
class Violation:
    """One axe-core rule a page breaks, with the elements that break it."""

    step: str
    url: str
    rule: str
    impact: str
    help: str
    targets: tuple[str, ...]

    def __str__(self) -> str:
        return (f"{self.step} ({self.url}): {self.rule} [{self.impact}] {self.help}; "
                f"elements: {', '.join(self.targets)}")


def axe_violations(page: Page, step: str) -> list[Violation]:
    """Every violation axe-core finds on the page as it is now."""
    results = _AXE.run(page)
    return [Violation(step, page.url, item["id"], item.get("impact") or "", item["help"],
                      tuple(" ".join(map(str, node["target"])) for node in item["nodes"]))
            for item in results.response["violations"]]


@dataclass
class StepRecorder:
    """Screenshots and axe scans of a test's steps, in order."""

    folder: Path
    prefix: str = ""
    count: int = 0
    violations: list[Violation] = field(default_factory=list)
    scanned: list[str] = field(default_factory=list)

    def record(self, page: Page, name: str, scan: bool = True) -> Path:
        """Save the page as the next numbered screenshot; scan it unless told not to
        (a page that is not the portal's, such as the payment provider's)."""
        self.count += 1
        slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
        path = self.folder / f"{self.prefix}{self.count:02d}-{slug}.png"
        page.screenshot(path=str(path), full_page=True)
        if scan:
            self.scanned.append(name)
            self.violations.extend(axe_violations(page, name))
        return path

    def serious_violations(self) -> list[Violation]:
        return [v for v in self.violations if v.impact in FAILING_IMPACTS]

    def report(self) -> str:
        found = self.serious_violations()
        return "\n".join(["axe-core found serious or critical violations:",
                          *(f"- {violation}" for violation in found)])


def focused_text(page: Page) -> str:
    """The visible text (or value) of the element that has the keyboard focus."""
    return page.evaluate(
        "() => { const e = document.activeElement;"
        " return e ? (e.innerText || e.value || '').trim() : ''; }")


def focused_id(page: Page) -> str:
    return page.evaluate("() => document.activeElement ? document.activeElement.id : ''")


def tab_until(page: Page, wanted: str, limit: int = 40) -> None:
    """Press Tab until the focused element's text is `wanted` (at most `limit` times)."""
    seen = []
    for _ in range(limit):
        page.keyboard.press("Tab")
        text = focused_text(page)
        if text == wanted:
            return
        seen.append(text)
    raise AssertionError(f"{wanted!r} was not reached by Tab on {page.url}; focus went "
                         f"through {seen}")


def horizontal_overflow(page: Page) -> int:
    """How many CSS pixels the page is wider than its viewport (0: no horizontal scroll)."""
    return page.evaluate(
        "() => Math.max(document.documentElement.scrollWidth, document.body.scrollWidth)"
        " - document.documentElement.clientWidth")


def publish_artifacts(folder: Path, target: Path) -> None:
    """Replace `target` by a copy of `folder` (the screenshots of the last run)."""
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(folder, target)
