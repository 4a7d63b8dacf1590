"""Shared test scaffolding: the repository root, one fresh build of the book per test
session (``built_site``), a chapter's glued values (``values``: a chapter test module sets
``PAGE`` and ``PREFIX``), a server that never answers (``silent_server``), a page executed
without any source (``run_page_without_sources``), and the markers that follow from them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT.parent / "shared" / "reference"
#: Skip marker of the tests that read GPT-2 small's large tensors from ``REFERENCE``.
needs_gpt2_reference = pytest.mark.skipif(
    not (REFERENCE / "gpt2_small_attention.npz").is_file(),
    reason="reference GPT-2 tensors not present",
)


def build_book(
    output: Path, *, env: dict[str, str] | None = None, source: Path = ROOT
) -> subprocess.CompletedProcess:
    """Build the book in ``source`` into ``output/_build/html`` (strict: -n -W --keep-going)."""
    command = [
        str(Path(sys.executable).with_name("jupyter-book")),
        "build",
        str(source),
        "--path-output",
        str(output),
        "-n",
        "-W",
        "--keep-going",
        "--builder",
        "html",
    ]
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        command, capture_output=True, text=True, env=full_env, timeout=1800
    )


def write_toy_book_config(
    book: Path,
    chapters: Sequence[str],
    extensions: str | Sequence[str],
    sphinx_config: Mapping[str, object] | None = None,
    *,
    title: str = "Toy",
    numbered: bool = False,
    exclude: Sequence[str] = (),
    execute: Mapping[str, object] | None = None,
) -> None:
    """``_toc.yml`` and ``_config.yml`` of a throw-away book in ``book`` (tests of the
    build): the root page ``intro``, then ``chapters`` (numbered if ``numbered``); only
    those files are built, hidden folders, ``_build`` and ``exclude`` are left out; the
    extensions ``_ext/<name>.py`` named in ``extensions`` are loaded, with ``sphinx_config`` as Sphinx's
    ``config``; ``execute``: the execution settings (None: Jupyter Book's default)."""
    import yaml

    toc: dict[str, object] = {"format": "jb-book", "root": "intro"}
    if numbered:
        toc["defaults"] = {"numbered": True}
    toc["chapters"] = [{"file": name} for name in chapters]
    config: dict[str, object] = {
        "title": title,
        "only_build_toc_files": True,
        "exclude_patterns": [".*", "**/.*", "_build", *exclude],
    }
    if execute is not None:
        config["execute"] = dict(execute)
    names = [extensions] if isinstance(extensions, str) else list(extensions)
    sphinx: dict[str, object] = {
        "local_extensions": {name: str(ROOT / "_ext") for name in names}
    }
    if sphinx_config is not None:
        sphinx["config"] = {k: str(v) for k, v in sphinx_config.items()}
    config["sphinx"] = sphinx
    (book / "_toc.yml").write_text(yaml.safe_dump(toc, sort_keys=False))
    (book / "_config.yml").write_text(yaml.safe_dump(config, sort_keys=False))


def load_extension(name: str):
    """The Sphinx extension ``_ext/<name>.py``, imported as a module of that name."""
    import importlib.util

    if str(ROOT / "_ext") not in sys.path:  # for the _ext modules it imports
        sys.path.insert(0, str(ROOT / "_ext"))
    spec = importlib.util.spec_from_file_location(name, ROOT / "_ext" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def built_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """HTML folder of a fresh, strict build of the book, made once per test run.

    ``make test`` builds the book first (``make book``: strict, the same command as
    :func:`build_book`; cold on CI, where ``.ci/run`` removes ``_build``) and points
    ``NUMSCALE_TEST_SITE`` at its ``_build/html``, so every phase of the run tests that
    one build. Without it (``pytest`` run directly) the book is built here, once for
    the whole run: with pytest-xdist the first worker to get here builds into a folder
    shared by the run's workers while the others wait on a lock, then all read it.
    """
    existing = os.environ.get("NUMSCALE_TEST_SITE")
    if existing:
        return Path(existing)
    import fcntl

    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # the run's folder, shared by its workers (gw0, gw1, ...)
    output = base / "book"
    status = base / "book.status"
    with open(base / "book.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not status.is_file():
            output.mkdir(exist_ok=True)
            result = build_book(output)
            (output / "build.log").write_text(result.stdout + "\n" + result.stderr)
            tail = f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
            status.write_text(f"{result.returncode}\n{tail}")
    code, _, tail = status.read_text().partition("\n")
    log = output / "build.log"
    assert code == "0", f"book build failed (log: {log}):\n{tail}"
    return output / "_build" / "html"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--glue-mutation",
        metavar="REPORT",
        type=Path,
        default=None,
        help="run the glue-mutation check (tests/glue_mutation.py) and write "
        "its JSON report to REPORT",
    )
    parser.addoption(
        "--glue-mutation-min",
        type=float,
        default=0.9,
        help="share of quoted results that must be guarded (default 0.9)",
    )


def pytest_configure(config: pytest.Config) -> None:
    report = config.getoption("glue_mutation")
    if report is not None:
        from glue_mutation import GlueMutation

        config.pluginmanager.register(
            GlueMutation(report, config.getoption("glue_mutation_min")), "glue_mutation"
        )


#: Fixtures that make something expensive once per run (a PDF, a second build, every
#: chapter executed): the tests using one share an xdist group, so that with
#: ``pytest -n N --dist loadgroup`` one worker makes it and runs them all.
SHARED_WORK = {
    "book_pdf": "pdf",
    "pdf_text": "pdf",
    "pdf_pages": "pdf",
    "singlehtml": "pdf",
    "second_site": "reproducibility",
    "executed_chapters": "notebooks",
}


@pytest.hookimpl(tryfirst=True)  # before -m deselects and xdist reads the groups
def pytest_collection_modifyitems(
    config: pytest.Config, items: list[pytest.Item]
) -> None:
    """Marks that follow from what a test uses, so that no selection can miss them:

    * ``build`` on every test that reads the built book (``built_site``): ``make check``
      (``-m "not build and not browser and not notebooks"``) never builds;
    * ``notebooks`` on the tests that execute every chapter's downloaded notebook;
    * an ``xdist_group`` per expensive shared fixture (:data:`SHARED_WORK`).
    """
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        if "built_site" in names and item.get_closest_marker("build") is None:
            item.add_marker(pytest.mark.build)
        if "executed_chapters" in names:
            item.add_marker(pytest.mark.notebooks)
        groups = {SHARED_WORK[name] for name in names if name in SHARED_WORK}
        if groups:
            item.add_marker(pytest.mark.xdist_group(sorted(groups)[0]))


def page_data() -> dict[str, str]:
    """page -> the data it needs beyond the package (``numscale_page_data`` in
    ``_config.yml``): the pages a build without that data replaces by a note."""
    import yaml

    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    return config["sphinx"]["config"]["numscale_page_data"]


def pages_without_data(site: Path) -> frozenset[str]:
    """The pages of :func:`page_data` that the build in ``site`` replaced by the note
    naming their data (they have no notebook and no launch buttons)."""
    from test_build import built_without_data

    return frozenset(p for p in page_data() if built_without_data(site, p))


def chapter_values(site: Path, page: str, prefix: str = ""):
    """The glued values of ``page`` in the built ``site`` whose names start with
    ``prefix``, keyed without it (a live ``test_build.GluedValues``), or ``None`` when
    the build replaced a page of :func:`page_data` by the note naming its data."""
    from test_build import built_without_data, glued_values

    if page in page_data() and built_without_data(site, page):
        return None
    return glued_values(site, page).with_prefix(prefix)


@pytest.fixture(scope="module")
def values(request: pytest.FixtureRequest, built_site: Path):
    """The glued values of the chapter a test module checks (:func:`chapter_values`).

    The module names its page, and the prefix its glue names share if they do::

        PAGE = "book/quantization"
        PREFIX = "quant_"  # values["loss_base"] is the glued quant_loss_base

    Skipped when the build replaced the page by the note naming the data it lacks
    (only a page of :func:`page_data`; tests/test_data_pages.py checks the note).
    Every read goes through ``test_build.glued_values``' live mapping, so the
    glue-mutation check (tests/glue_mutation.py) sees it.
    """
    page = getattr(request.module, "PAGE", None)
    if page is None:
        raise TypeError(f"{request.module.__name__} sets no PAGE for its values")
    found = chapter_values(built_site, page, getattr(request.module, "PREFIX", ""))
    if found is None:
        pytest.skip(f"{page} was built without its data ({page_data()[page]})")
    return found


def off_reference(
    values: Mapping[str, float],
    reference: Mapping[str, float],
    rel: float,
    loose: Mapping[str, tuple[str, float]] | None = None,
) -> dict[str, tuple[float, float]]:
    """name -> (glued, expected) for every name of ``reference`` whose glued value in
    ``values`` is off its expected value: by more than the relative tolerance ``rel``,
    or the tolerance ``loose[name]`` gives, ``("rel", r)`` or ``("abs", a)``. A
    chapter test asserts it is empty, so that one run lists every wrong number."""
    wrong = {}
    for name, expected in reference.items():
        kind, tolerance = (loose or {}).get(name, ("rel", rel))
        if kind not in ("rel", "abs"):
            raise ValueError(f"loose[{name!r}] must be ('rel', r) or ('abs', a)")
        within = (
            values[name] == pytest.approx(expected, rel=tolerance, abs=0)
            if kind == "rel"
            else abs(values[name] - expected) <= tolerance
        )
        if not within:
            wrong[name] = (values[name], expected)
    return wrong


@pytest.fixture(scope="module")
def v(values):
    """:func:`values` under the short name of the chapter tests that read many."""
    return values


@pytest.fixture
def silent_server():
    """A local TCP server that accepts connections and never answers: an HTTP probe of
    its URL (``http://127.0.0.1:<port>``) hangs until its own timeout."""
    import socket

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    server.close()


def run_page_without_sources(page: str, out: Path) -> subprocess.CompletedProcess:
    """Execute ``book/<page>.md`` as a notebook (tools/run_pages.py) the way a stranger's
    machine would: no NUMSCALE_* variable, the hub offline and its cache empty. The
    executed notebook is ``out/<page>.ipynb``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUMSCALE_")}
    env.update(HF_HUB_OFFLINE="1", HF_HUB_CACHE=str(out / "empty-cache"))
    command = [
        sys.executable,
        str(ROOT / "tools" / "run_pages.py"),
        str(ROOT / "book" / f"{page}.md"),
        "--out",
        str(out),
    ]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)


def outputs_of(notebook_path: Path) -> list[dict]:
    """Every output of every cell of an executed notebook."""
    notebook = json.loads(notebook_path.read_text())
    return [o for cell in notebook["cells"] for o in cell.get("outputs", [])]


def check_runs_on_embedded_data(page: str, out: Path) -> None:
    """Execute ``book/<page>.md`` with no source at all (:func:`run_page_without_sources`)
    and check that it runs on the data built into numscale: it exits 0, its output says
    so, and it writes nothing to stderr."""
    result = run_page_without_sources(page, out)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    outputs = outputs_of(out / f"{page}.ipynb")
    assert "built into numscale" in "".join("".join(o.get("text", "")) for o in outputs)
    assert not any(o.get("name") == "stderr" for o in outputs)
