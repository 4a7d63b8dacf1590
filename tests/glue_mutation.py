"""The glue-mutation check: is every number the prose quotes guarded by a test?

For every name a chapter's prose quotes through ``{glue:text}`` (or ``{glue}``), the check
replaces the glued value by a wrong one, in what the chapter tests read, and runs again
the tests that read it:

- a float ``x``: ``1.5·x`` and ``x/1.5`` (``x ± 1`` when ``x = 0``);
- an integer: ``x ± 1`` when ``|x| ≤ 10``, else ``round(1.5·x)`` and ``round(x/1.5)``;
- a bool: ``not x``.

A quoted *result* is guarded when at least one of its mutants makes a test fail. A quoted
*input* (glued with :func:`numscale.report.glue_inputs`, which marks it) is a number the
page chose: listed, not mutated. Strings are listed as text.

How: tests read glued values through ``test_build.glued_values``, a live mapping
(``GluedValues``) that returns the value of the active ``test_build.Mutation`` and records
every name a test reads. Each test runs once normally (a test that fails or skips guards
nothing), then again in the same process, with its fixtures in place, once per mutant of
every quoted result it read. Works under pytest-xdist: workers send what they found to
the controller in the test reports' ``user_properties``.

Enabled by ``pytest --glue-mutation=REPORT.json [--glue-mutation-min=0.9]`` (conftest.py);
the session fails when the share of guarded results is below the minimum.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GLUE_ROLE = re.compile(r"\{glue(?::text)?\}`([A-Za-z_]\w*)")
INPUT_MARKER = "__is_input"  # numscale.report.INPUT_MARKER
PROPERTY = "glue_mutation"
SITE_PROPERTY = "glue_mutation_site"


def quoted_names(page_source: str) -> list[str]:
    """Glue names the prose of a MyST page quotes, in order of first appearance."""
    seen: dict[str, None] = {}
    for match in GLUE_ROLE.finditer(page_source):
        seen.setdefault(match.group(1), None)
    return list(seen)


def mutants(value: object) -> list[object]:
    """The wrong values the check substitutes for ``value`` (empty: not a number)."""
    if isinstance(value, bool):
        return [not value]
    if isinstance(value, int):
        if abs(value) <= 10:
            return [value + 1, value - 1]
        return [round(value * 1.5), round(value / 1.5)]
    if isinstance(value, float):
        if value == 0.0:
            return [1.0, -1.0]
        return [value * 1.5, value / 1.5]
    return []


def quoting_pages() -> list[str]:
    """Every page of ``book/`` whose prose quotes a glued value."""
    return sorted(
        f"book/{p.stem}"
        for p in (ROOT / "book").glob("*.md")
        if GLUE_ROLE.search(p.read_text(encoding="utf-8"))
    )


@dataclass
class Target:
    """One quoted name: its page, kind and (for results) its glued value."""

    page: str
    kind: str  # "result", "input", "text", "missing" or "no data" (page not built with it)
    value: object = None
    caught: set[int] = field(default_factory=set)  # indices of caught mutants
    caught_by: set[str] = field(default_factory=set)


def find_targets(site: Path) -> dict[str, Target]:
    """name -> Target for every name quoted in the prose of the built ``site``."""
    from conftest import pages_without_data
    from test_build import glued_values

    # a page the build replaced by the note naming the data it lacks (a machine without
    # GPT-2's tensors): its chapter tests skip, so its numbers cannot be checked here
    without_data = pages_without_data(site)
    targets: dict[str, Target] = {}
    for page in quoting_pages():
        source = (ROOT / f"{page}.md").read_text(encoding="utf-8")
        if page in without_data:
            targets.update({n: Target(page, "no data") for n in quoted_names(source)})
            continue
        try:
            values = dict(glued_values(site, page)._raw)
        except FileNotFoundError:
            values = {}
        for name in quoted_names(source):
            if name not in values:
                targets[name] = Target(page, "missing")
            elif f"{name}{INPUT_MARKER}" in values:
                targets[name] = Target(page, "input", values[name])
            elif not mutants(values[name]):
                targets[name] = Target(page, "text", values[name])
            else:
                targets[name] = Target(page, "result", values[name])
    return targets


class GlueMutation:
    """The pytest plugin (see the module docstring)."""

    def __init__(self, report: Path, minimum: float) -> None:
        self.report = report
        self.minimum = minimum
        self.site: Path | None = None
        self.targets: dict[str, Target] = {}
        self.found: list[tuple[str, int, str]] = []  # (name, mutant index, test id)

    def _targets_for(self, item: pytest.Item) -> dict[str, Target]:
        site = getattr(item, "funcargs", {}).get("built_site")
        if site is None:
            site = getattr(getattr(item, "module", None), "SITE", None)
        if site is not None and self.site is None:
            self.site = Path(site)
            self.targets = find_targets(self.site)
        return self.targets

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_call(self, item: pytest.Item):
        import test_build

        test_build.GluedValues.reads = set()
        outcome = yield
        read = set(test_build.GluedValues.reads)
        if outcome.excinfo is not None or not read:
            return
        if item.get_closest_marker("no_glue_mutation") is not None:
            return  # e.g. a comparison of two builds: the same value guards nothing
        targets = self._targets_for(item)
        if self.site is not None:
            item.user_properties.append((SITE_PROPERTY, str(self.site)))
        for name in sorted(read & targets.keys()):
            if targets[name].kind != "result":
                continue
            for index, wrong in enumerate(mutants(targets[name].value)):
                test_build.Mutation.name, test_build.Mutation.value = name, wrong
                try:
                    item.runtest()
                    failed = False
                except pytest.skip.Exception:
                    failed = False
                except Exception:  # AssertionError, pytest.fail, a crash on the value
                    failed = True
                except pytest.fail.Exception:
                    failed = True
                finally:
                    test_build.Mutation.name, test_build.Mutation.value = None, None
                if failed:
                    item.user_properties.append((PROPERTY, (name, index, item.nodeid)))

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        for key, value in report.user_properties:
            if key == PROPERTY:
                self.found.append(tuple(value))
            elif key == SITE_PROPERTY and self.site is None:
                self.site = Path(value)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if hasattr(session.config, "workerinput"):
            return  # an xdist worker: the controller reports
        site = self.site or _site_from_env()
        if site is None:
            return
        targets = find_targets(Path(site))
        for name, index, nodeid in self.found:
            if name in targets:
                targets[name].caught.add(index)
                targets[name].caught_by.add(nodeid)
        text, overall = table(targets)
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_sep("=", "glue-mutation check")
            reporter.write_line(text)
        self.report.parent.mkdir(parents=True, exist_ok=True)
        self.report.write_text(
            json.dumps(
                {
                    "guarded_share": overall,
                    "minimum": self.minimum,
                    "names": {
                        name: {
                            "page": t.page,
                            "kind": t.kind,
                            "mutants": len(mutants(t.value))
                            if t.kind == "result"
                            else 0,
                            "caught": len(t.caught),
                            "caught_by": sorted(t.caught_by),
                        }
                        for name, t in targets.items()
                    },
                },
                indent=1,
            )
        )
        if overall < self.minimum and session.exitstatus == 0:
            if reporter is not None:
                reporter.write_line(
                    f"glue-mutation check: {100 * overall:.1f}% of quoted results guarded,"
                    f" below {100 * self.minimum:.0f}%",
                    red=True,
                )
            session.exitstatus = pytest.ExitCode.TESTS_FAILED


def _site_from_env() -> Path | None:
    import os

    site = os.environ.get("NUMSCALE_TEST_SITE")
    return Path(site) if site else None


def table(targets: dict[str, Target]) -> tuple[str, float]:
    """A Markdown table per page, and the overall share of guarded results."""
    rows = [
        "| page | quoted | inputs | text | results | guarded | % | mutants caught |",
        "|---|---|---|---|---|---|---|---|",
    ]
    total_results = total_guarded = 0
    for page in sorted({t.page for t in targets.values()}):
        mine = [t for t in targets.values() if t.page == page]
        if all(t.kind == "no data" for t in mine):
            rows.append(
                f"| {page.removeprefix('book/')} | {len(mine)} | built without its "
                "data: not checked, not counted | | | | | |"
            )
            continue
        results = [t for t in mine if t.kind in ("result", "missing")]
        guarded = [t for t in results if t.caught]
        tried = sum(len(mutants(t.value)) for t in results if t.kind == "result")
        caught = sum(len(t.caught) for t in results)
        share = 100 * len(guarded) / len(results) if results else 100.0
        rows.append(
            f"| {page.removeprefix('book/')} | {len(mine)} | "
            f"{sum(t.kind == 'input' for t in mine)} | {sum(t.kind == 'text' for t in mine)} | "
            f"{len(results)} | {len(guarded)} | {share:.0f} | {caught}/{tried} |"
        )
        total_results += len(results)
        total_guarded += len(guarded)
    overall = total_guarded / total_results if total_results else 1.0
    checked = [t for t in targets.values() if t.kind != "no data"]
    rows.append(
        f"| **all** | {len(checked)} | "
        f"{sum(t.kind == 'input' for t in checked)} | "
        f"{sum(t.kind == 'text' for t in checked)} | {total_results} | "
        f"{total_guarded} | {100 * overall:.0f} | |"
    )
    return "\n".join(rows), overall
