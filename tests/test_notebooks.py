"""A downloaded chapter runs on its own, and reads well in plain Jupyter.

Each chapter is converted exactly as the site's download button serves it
(``_ext/numscale_notebooks.py``: jupytext, readable prose and a hidden install cell)
and executed with nbclient in a fresh kernel whose working directory is a temporary
folder outside the repository. The kernel has the helper package installed (the venv's
editable install; PYTHONPATH is dropped so that the package cannot come from the
checkout by accident), so the install cell must do nothing: a guard makes any pip call
an error for the run. Small kernels check the install cell itself: silent when
``numscale`` imports; pip-installing ``numscale @ git+<repository>@<commit>`` when it
does not; and, with pip pointed at an unreachable index, failing at once with a clear
error instead of a misleading one two cells later. The notebooks the build wrote are
checked against the built pages: no MyST syntax left, the glued numbers the page shows,
links that resolve, and the equation, figure and exercise numbers the page prints.
"""

from __future__ import annotations

import html
import importlib.util
import json
import os
import re
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import pytest
import yaml
from nbclient import NotebookClient

from browser_support import ROOT, notebook_docnames

CHAPTERS = notebook_docnames()
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
REPO = CONFIG["repository"]["url"].rstrip("/")
BRANCH = CONFIG["repository"].get("branch") or "main"
#: One BLAS/torch thread per kernel, as in the build (two shared cores).
KERNEL_THREADS = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}

#: Run before the install cell: any pip call is an error.
NO_PIP = """\
import subprocess

_run = subprocess.run

def _pip_forbidden(command, *args, **kwargs):
    if "pip" in map(str, command if isinstance(command, (list, tuple)) else [command]):
        raise AssertionError(f"the install cell ran {command} although the packages are importable")
    return _run(command, *args, **kwargs)

subprocess.run = _pip_forbidden
"""

#: Run before the install cell: numscale cannot be imported; pip calls are recorded and
#: "succeed" (numscale importable again afterwards).
NUMSCALE_MISSING = """\
import subprocess
import sys

sys.modules["numscale"] = None  # `import numscale` now raises ImportError
_pip_calls = []

def _fake_pip(command, **kwargs):
    _pip_calls.append(command)
    del sys.modules["numscale"]
    return subprocess.CompletedProcess(command, 0, "", "")

subprocess.run = _fake_pip
"""

#: Run before the install cell: numscale cannot be imported, and pip really runs.
NUMSCALE_MISSING_REAL_PIP = """\
import sys

sys.modules["numscale"] = None
"""
#: A repository and an index nobody answers (connection refused at once), and
#: ``--dry-run`` so that this pip can never change the test's environment.
UNREACHABLE_REPO = "https://127.0.0.1:9/numscale/numscale-book"
OFFLINE_PIP_ENV = {
    "PIP_INDEX_URL": "http://127.0.0.1:9/simple",
    "PIP_CONFIG_FILE": os.devnull,
    "PIP_DRY_RUN": "1",
    "PIP_FIND_LINKS": "",
}


def _load_extension(name: str):
    """``_ext/<name>.py`` as a module (``_ext`` on the path for the modules it imports,
    as the build and the script have it)."""
    if str(ROOT / "_ext") not in sys.path:
        sys.path.insert(0, str(ROOT / "_ext"))
    spec = importlib.util.spec_from_file_location(name, ROOT / "_ext" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


notebooks = _load_extension("numscale_notebooks")
installer = _load_extension("numscale_install_cell")
REF = installer.source_ref(ROOT, BRANCH)
REQUIREMENT = f"numscale @ git+{REPO}@{REF}"


def _source(docname: str) -> Path:
    return next(
        p for p in (ROOT / f"{docname}.md", ROOT / f"{docname}.ipynb") if p.is_file()
    )


def _kernel_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The test's environment without PYTHONPATH: the package must come from the install."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(KERNEL_THREADS)
    env.update(extra or {})
    return env


def _execute(
    notebook, cwd: Path, timeout: int = 600, env: dict[str, str] | None = None
):
    client = NotebookClient(
        notebook,
        timeout=timeout,
        kernel_name="python3",
        allow_errors=False,
        resources={"metadata": {"path": str(cwd)}},
    )
    client.execute(env=_kernel_env(env))
    return notebook


def test_chapters_found():
    assert CHAPTERS, "no notebook chapters in _toc.yml"


@pytest.mark.parametrize("docname", CHAPTERS)
def test_install_cell_is_first_and_hidden(docname):
    notebook = notebooks.site_notebook(ROOT, docname)
    first = notebook.cells[0]
    assert first.cell_type == "code"
    assert {"remove-cell", "hide-cell"} <= set(first.metadata["tags"])
    assert first.metadata["jupyter"]["source_hidden"] is True
    source = first.source
    assert repr(REQUIREMENT) in source, f"the install cell does not pin {REQUIREMENT!r}"
    lines = source.splitlines()
    pip_line = next(i for i, line in enumerate(lines) if '"pip", "install"' in line)
    guard = next(
        i for i, line in enumerate(lines) if line.startswith("except ImportError")
    )
    assert guard < pip_line and lines[pip_line].startswith("        "), (
        "pip must run only when an import fails"
    )
    assert any(line.startswith("    import numscale") for line in lines)
    # The code is the chapter's, cell for cell.
    import jupytext

    original = jupytext.read(_source(docname))
    assert [c.source for c in notebook.cells[1:] if c.cell_type == "code"] == [
        c.source for c in original.cells if c.cell_type == "code"
    ]
    assert notebook.metadata["kernelspec"]["name"] == "python3"
    nbformat.validate(notebook)


@pytest.mark.parametrize(
    "markdown, kind, name",
    [
        ("H{sub}`2`O", "role", "{sub}"),
        ("see {doc}`intro`", "role", "{doc}"),
        ("```{figure} a.png\n```", "directive", "{figure}"),
    ],
)
def test_markup_without_a_notebook_form_fails_loudly(markdown, kind, name):
    """The converter knows only the roles and directives the book uses; any other raises
    (a warning in the build, so the strict build fails) instead of serving raw MyST."""
    index = notebooks.BookIndex("https://example.org/")
    context = notebooks.PageContext(index, "book/x", ROOT / "book")
    with pytest.raises(
        notebooks.NotebookMarkdownError,
        match=re.escape(f"no notebook form for the {kind} {name}"),
    ):
        notebooks.convert_markdown(context, markdown)


def test_install_cell_pins_the_commit_of_the_build():
    """Inside a git checkout the requirement names HEAD's commit (not the branch, which
    moves on after the page was built); outside git, the branch."""
    import subprocess

    head = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True
    )
    if head.returncode == 0:
        assert REF == head.stdout.strip() and re.fullmatch(r"[0-9a-f]{40}", REF)
    else:
        assert REF == BRANCH
    assert installer.source_ref(Path("/"), "fallback-branch") == "fallback-branch"


def test_conversion_is_deterministic():
    first = notebooks.notebook_text(notebooks.site_notebook(ROOT, CHAPTERS[0]))
    second = notebooks.notebook_text(notebooks.site_notebook(ROOT, CHAPTERS[0]))
    assert first == second


def _install_notebook(
    setup: str, *after: str, repo: str = REPO
) -> nbformat.NotebookNode:
    """A notebook: the code cell ``setup``, the install cell for numscale
    (and myst_nb) from ``repo`` at REF, then a code cell of each of ``after``."""
    cell_source = installer.install_cell_source(repo, REF, ["numscale", "myst_nb"])
    return nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell(setup),
            nbformat.v4.new_code_cell(cell_source),
            *(nbformat.v4.new_code_cell(code) for code in after),
        ]
    )


def test_install_cell_does_nothing_when_numscale_imports(tmp_path):
    notebook = _install_notebook(NO_PIP)
    _execute(notebook, tmp_path, timeout=120)
    assert notebook.cells[1].outputs == []


def test_install_cell_installs_from_the_repository_when_numscale_is_missing(tmp_path):
    notebook = _install_notebook(
        NUMSCALE_MISSING, "import json; print(json.dumps(_pip_calls))"
    )
    _execute(notebook, tmp_path, timeout=120)
    calls = json.loads(notebook.cells[2].outputs[0]["text"])
    assert len(calls) == 1, calls
    assert calls[0][1:4] == ["-m", "pip", "install"], calls  # the kernel's own Python
    assert REQUIREMENT in calls[0] and "myst-nb" in calls[0], calls


def test_install_cell_fails_at_once_with_a_clear_error_offline(tmp_path):
    """No network: pip fails, and the cell raises naming what failed and what to do,
    within seconds (one retry), so that no later cell runs into a misleading
    ModuleNotFoundError."""
    from nbclient.exceptions import CellExecutionError

    notebook = _install_notebook(
        NUMSCALE_MISSING_REAL_PIP, "print('the next cell ran')", repo=UNREACHABLE_REPO
    )
    start = time.perf_counter()
    with pytest.raises(CellExecutionError) as caught:
        _execute(notebook, tmp_path, timeout=120, env=OFFLINE_PIP_ENV)
    elapsed = time.perf_counter() - start
    message = str(caught.value)
    assert "RuntimeError" in message and "could not install" in message, message[-2000:]
    assert f"numscale @ git+{UNREACHABLE_REPO}@{REF}" in message, (
        "the error must name the requirement"
    )
    assert "pip exited with status" in message and "Connect to the internet" in message
    assert "ModuleNotFoundError" not in message
    assert notebook.cells[2].get("outputs", []) == [], (
        "a cell after the failed install ran"
    )
    # A kernel start plus pip failing on a refused connection takes a few seconds; 60 s
    # would mean pip is retrying or waiting on a timeout.
    assert elapsed < 60, f"the failing install took {elapsed:.0f} s"


def _lacking_data() -> dict[str, str]:
    """Chapters whose data (beyond the package's) this machine lacks -> why: their
    notebooks stop at the cell that loads it, with that reason, as they should."""
    from conftest import load_extension, page_data

    data = load_extension("numscale_data")
    lacking = {}
    for docname, requirement in page_data().items():
        reason = data.missing(requirement)
        if reason is not None:
            lacking[docname] = f"{requirement}: {reason}"
    return lacking


@pytest.fixture(scope="session")
def executed_chapters(tmp_path_factory):
    """Every chapter's notebook executed in its own temporary folder, two kernels at a
    time (two cores): ``{docname: (notebook, error or None)}``; a chapter whose data
    this machine lacks is not run (``(None, reason)``)."""
    workers = max(1, min(2, os.cpu_count() or 1))
    lacking = _lacking_data()

    def run(docname: str):
        if docname in lacking:
            return None, lacking[docname]
        notebook = notebooks.site_notebook(ROOT, docname)
        notebook.cells.insert(0, nbformat.v4.new_code_cell(NO_PIP))
        workdir = tmp_path_factory.mktemp(docname.replace("/", "-"))
        if ROOT in workdir.resolve().parents:
            return notebook, AssertionError(f"{workdir} is inside the repository")
        try:
            _execute(notebook, workdir)
        except Exception as error:  # reported by the chapter's own test
            return notebook, error
        return notebook, None

    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {name: pool.submit(run, name) for name in CHAPTERS}
        return {name: future.result() for name, future in futures.items()}


@pytest.mark.parametrize("docname", CHAPTERS)
def test_chapter_notebook_runs_outside_the_repository(executed_chapters, docname):
    notebook, error = executed_chapters[docname]
    if notebook is None:
        pytest.skip(f"{docname}: this machine lacks its data ({error})")
    if error is not None:
        pytest.fail(
            f"{docname}: the downloaded notebook failed outside the repository:\n{error}",
            pytrace=False,
        )
    install = notebook.cells[1]
    assert "remove-cell" in install.metadata["tags"] and install.outputs == [], (
        "the install cell printed something"
    )
    executed = [c for c in notebook.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in executed), (
        "not every code cell ran"
    )


# ------------------------------------------------ the served notebooks, read as a reader

#: MyST syntax that plain Jupyter shows raw: roles, directive fences, target labels,
#: labelled display maths, comments.
MYST_SYNTAX = re.compile(
    r"\{[A-Za-z][\w:.-]*\}`"  # {role}`...`
    r"|^\s*(`{3,}|~{3,}|:{3,})\{[\w:.-]+\}"  # ```{directive} / :::{directive}
    r"|^\([^()\s]+\)=\s*$"  # (label)=
    r"|\$\$\s*\([^()\s]+\)\s*$"  # $$ (eq-label)
    r"|^%(?!%)",  # % a MyST comment
    re.M,
)
LINK = re.compile(r"\]\((?P<url>[^)\s]+)\)")


def _served(built_site: Path, docname: str) -> dict:
    """The notebook the site serves for ``docname``; a page the build replaced by the
    note naming its data serves none (checked), and its tests are skipped."""
    from conftest import pages_without_data

    path = built_site / "_notebooks" / f"{docname}.ipynb"
    if docname in pages_without_data(built_site):
        assert not path.exists(), f"{docname}: built without its data, yet a notebook"
        pytest.skip(f"{docname} was built without its data: no notebook is served")
    return json.loads(path.read_text(encoding="utf-8"))


def _markdown(notebook: dict) -> str:
    return "\n\n".join(
        "".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == "markdown"
    )


def _page_text(built_site: Path, docname: str) -> str:
    """The article's visible text (tags removed, entities decoded, spaces collapsed)."""
    page = (built_site / f"{docname}.html").read_text(encoding="utf-8")
    match = re.search(r'<article class="bd-article"[^>]*>(.*?)</article>', page, re.S)
    text = re.sub(r"<[^>]+>", "", match.group(1) if match else page)
    return re.sub(r"\s+", " ", html.unescape(text))


def _plain(markdown: str) -> str:
    """Markdown as text: links reduced to their text, emphasis and spaces collapsed."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", markdown)
    return re.sub(r"\s+", " ", text.replace("**", ""))


@pytest.mark.build
@pytest.mark.parametrize("docname", CHAPTERS)
def test_served_notebook_has_no_myst_syntax(built_site, docname):
    notebook = _served(built_site, docname)
    leftovers = []
    for cell in notebook["cells"]:
        if cell["cell_type"] != "markdown":
            continue
        source = "".join(cell["source"])
        # Fenced code blocks (listings) may contain anything: check the prose around them.
        prose = re.sub(r"^(`{3,}).*?^\1\s*$", "", source, flags=re.S | re.M)
        leftovers += [m.group(0).strip() for m in MYST_SYNTAX.finditer(prose)]
    assert not leftovers, (
        f"{docname}: MyST syntax a plain Jupyter shows raw: {sorted(set(leftovers))}"
    )


@pytest.mark.build
@pytest.mark.parametrize("docname", CHAPTERS)
def test_served_notebook_quotes_the_glued_numbers_the_page_shows(built_site, docname):
    """Every value the page pastes (``<span class="pasted-text">``) is in the notebook's
    prose, as printed; the source's glue roles are all resolved."""
    page = (built_site / f"{docname}.html").read_text(encoding="utf-8")
    pasted = [
        html.unescape(v)
        for v in re.findall(r'<span class="pasted-text">(.*?)</span>', page, re.S)
    ]
    source_roles = re.findall(
        r"\{glue:text\}`", _source(docname).read_text(encoding="utf-8")
    )
    markdown = _markdown(_served(built_site, docname))
    if source_roles:
        assert pasted, (
            f"{docname}: glue roles in the source but nothing pasted in the page"
        )
    missing = [value for value in pasted if value not in markdown]
    assert not missing, (
        f"{docname}: glued values the page shows but the notebook lacks: {missing[:10]}"
    )
    start = 0  # and in the page's order
    for value in pasted:
        found = markdown.find(value, start)
        assert found >= 0, (
            f"{docname}: {value!r} is not in the notebook in the page's order"
        )
        start = found + len(value)


@pytest.mark.build
@pytest.mark.parametrize("docname", CHAPTERS)
def test_served_notebook_links_resolve_to_the_online_book(built_site, docname):
    """Cross-references became links to the published book (``numscale_site_url`` or the
    repository's GitHub Pages address): each names a built page and an anchor in it."""
    settings = notebooks.book_settings(ROOT)
    site = settings["site_url"]
    assert site.startswith("https://") and site.endswith("/")
    bad = []
    for match in LINK.finditer(_markdown(_served(built_site, docname))):
        url = match["url"]
        if not url.startswith(site):
            continue
        path, _, anchor = url[len(site) :].partition("#")
        target = built_site / path
        if not target.is_file():
            bad.append(f"{url}: no page {path}")
        elif anchor and f'id="{anchor}"' not in target.read_text(encoding="utf-8"):
            bad.append(f"{url}: no anchor {anchor!r} in {path}")
    assert not bad, (
        f"{docname}: links to the online book that do not resolve:\n  "
        + "\n  ".join(bad)
    )


@pytest.mark.build
def test_numbers_in_notebooks_match_the_site(built_site):
    """Equation, figure and exercise numbers the notebooks print are the page's."""
    from conftest import pages_without_data

    settings = notebooks.book_settings(ROOT)
    without = pages_without_data(built_site)
    index = notebooks.book_index(
        ROOT, settings["site_url"], settings["bibfiles"], built_site.parent, without
    )
    wrong = []
    for label, (docname, number) in index.equations.items():
        if docname in without:  # the page is the note: none of its labels are there
            continue
        page = (built_site / f"{docname}.html").read_text(encoding="utf-8")
        if not re.search(
            rf'id="equation-{re.escape(label)}".{{0,400}}?\({re.escape(number)}\)',
            page,
            re.S,
        ):
            wrong.append(f"equation {label}: ({number}) not at its anchor in {docname}")
    for label, (docname, number) in index.figures.items():
        if docname in without:
            continue
        page = (built_site / f"{docname}.html").read_text(encoding="utf-8")
        if not re.search(
            rf'id="{re.escape(label)}".*?Fig\. {re.escape(number)}', page, re.S
        ):
            wrong.append(f"figure {label}: Fig. {number} not in {docname}")
    for label, (docname, number) in index.exercises.items():
        if docname in without:
            continue
        text = _page_text(built_site, docname)
        if f"Exercise {number}" not in text:
            wrong.append(f"exercise {label}: Exercise {number} not in {docname}")
    assert index.equations and index.figures and index.exercises
    assert not wrong, "\n".join(wrong)


@pytest.mark.build
@pytest.mark.parametrize("docname", CHAPTERS)
def test_served_notebook_cites_as_the_page_does(built_site, docname):
    """``{cite:p}`` became "(Author et al., Year)", the text the page prints."""
    source = _source(docname).read_text(encoding="utf-8")
    if not re.search(r"\{cite:[a-z]+\}`", source):
        pytest.skip(f"{docname} cites nothing")
    settings = notebooks.book_settings(ROOT)
    index = notebooks.book_index(ROOT, settings["site_url"], settings["bibfiles"])
    page_text = _page_text(built_site, docname)
    plain = _plain(_markdown(_served(built_site, docname)))
    wrong = []
    for keys in re.findall(r"\{cite:p\}`([^`]+)`", source):
        for key in keys.split(","):
            authors, year = index.citations[key.strip()]
            if f"{authors}, {year}" not in page_text:
                wrong.append(f"{key}: the page does not print {authors}, {year}")
            if f"{authors}, {year}" not in plain:
                wrong.append(f"{key}: the notebook does not print {authors}, {year}")
    assert not wrong, f"{docname}:\n  " + "\n  ".join(wrong)
