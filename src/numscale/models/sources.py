"""Where a model's files come from: one rule for every model the book loads.

A loader (:mod:`numscale.models.gpt2`, :mod:`numscale.models.llama2c`) names its environment
variable and its default hub source; this module decides which source applies and what a
failure means:

* **explicit** source: a ``source`` argument, or the environment variable is set. The
  reader asked for it, so a source that cannot be used (a path that does not exist, a
  folder without the needed files, a corrupt file, missing tensors, an unreachable hub id)
  raises :class:`SourceError`, a ``ValueError`` whose message is one line naming the
  variable (or argument), the source and the reason. A build fails on it.
* **default** source (a Hugging Face hub id): when it is neither in the local Hugging Face
  cache nor reachable, :class:`SourceUnavailable` is raised, a ``RuntimeError`` that
  chapters catch to show a notice. The reachability probe takes at most
  :data:`PROBE_TIMEOUT` seconds and its answer is remembered for the process, so an
  offline build fails fast.

Descriptions of a source (:func:`describe_local`) never contain absolute machine paths:
a published page would otherwise show the build machine's folders.
"""

from __future__ import annotations

import os
import re
import textwrap
import threading
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Seconds allowed for the reachability probe of the hub endpoint.
PROBE_TIMEOUT = 1.5
#: Default width of :func:`wrap` (characters).
NOTICE_WIDTH = 100
#: A source description lists its files only while it stays this short.
DESCRIPTION_WIDTH = 80

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*(/[A-Za-z0-9][\w.\-]*)?$")
_SHELL_CWD_VAR = "PWD"  # the launching shell's directory; a kernel may run elsewhere


class SourceUnavailable(RuntimeError):
    """The default source cannot be had (not cached, hub unreachable): show a notice.

    ``str(exc)`` is the whole notice, wrapped; ``exc.reason`` the first sentence alone
    (why) and ``exc.advice`` the loader's advice (how to provide the files), for a page
    that words its own advice.
    """

    reason: str = ""
    advice: str = ""


class SourceError(ValueError):
    """A source the reader named explicitly cannot be used: fail, naming it and why."""


@dataclass(frozen=True)
class Choice:
    """Which source applies and how it was chosen.

    ``text``: the source as given (a path or a hub id); ``explicit``: named by the reader
    (argument or environment variable) rather than the default; ``origin``: how it was
    named, for messages (``"NUMSCALE_GPT2"``, ``"the source argument"``, ``"the default"``);
    ``env_var``: the loader's environment variable.
    """

    text: str
    explicit: bool
    origin: str
    env_var: str

    def error(self, reason: str, advice: str = "") -> SourceError | SourceUnavailable:
        """The exception for an unusable source: :class:`SourceError` if explicit."""
        return source_error(self, reason, advice)


def choose(source: Any, env_var: str, default: str) -> Choice:
    """The source that applies: ``source`` if given, else ``$env_var`` if set, else ``default``.

    ``TypeError`` if ``source`` is not a str or path; ``ValueError`` if it is blank.
    """
    if source is not None:
        if isinstance(source, os.PathLike):
            source = os.fspath(source)
        if not isinstance(source, str):
            raise TypeError(
                f"source must be a str or a path, got {type(source).__name__}"
            )
        if not source.strip():
            raise ValueError("source must not be an empty string")
        return Choice(source, True, "the source argument", env_var)
    value = os.environ.get(env_var, "")
    if value.strip():
        return Choice(value, True, env_var, env_var)
    return Choice(default, False, "the default", env_var)


def source_error(
    choice: Choice, reason: str, advice: str = ""
) -> SourceError | SourceUnavailable:
    """The exception for a source that cannot be used.

    Explicit source: :class:`SourceError` with one line, ``NUMSCALE_X='...' cannot be
    used: <reason>``. Default source: :class:`SourceUnavailable`, a notice for the page,
    ``advice`` appended, one paragraph without line breaks: whoever shows it wraps it
    once (:func:`wrap`), so HTML and PDF never show a notice wrapped twice.
    """
    reason = " ".join(reason.split()).rstrip(".")
    if choice.explicit:
        if choice.origin == choice.env_var:
            return SourceError(
                f"{choice.env_var}={choice.text!r} cannot be used: {reason}."
            )
        return SourceError(
            f"source {choice.text!r} ({choice.origin}) cannot be used: {reason}."
        )
    text = f"The default source {choice.text!r} is unavailable: {reason}."
    exc = SourceUnavailable(
        f"{text} {advice}".strip()
    )  # one paragraph: shown wrapped once
    exc.reason, exc.advice = text, advice
    return exc


def looks_like_path(text: str, suffixes: Sequence[str] = ()) -> bool:
    """A path rather than a hub id: starts with ``/ . ~``, ends with one of ``suffixes``,
    or cannot be a hub id (``name`` or ``owner/name``)."""
    return (
        text.startswith(("/", ".", "~"))
        or (bool(suffixes) and text.endswith(tuple(suffixes)))
        or (os.sep != "/" and os.sep in text)
        or not _HUB_ID.match(text)
    )


def local_path(text: str) -> Path:
    """``text`` as a path. A relative path that does not exist from the current directory
    is tried from the launching shell's directory ($PWD): the book executes pages inside
    ``book/``, while ``NUMSCALE_GPT2=../shared/reference`` is written relative to the
    directory the build was started from."""
    path = Path(text).expanduser()
    if not path.is_absolute() and not path.exists():
        shell_cwd = os.environ.get(_SHELL_CWD_VAR)
        if shell_cwd and (Path(shell_cwd) / path).exists():
            return Path(shell_cwd) / path
    return path


def describe_local(choice: Choice, path: Path, files: Sequence[str] = ()) -> str:
    """Where local files came from, without absolute paths.

    ``"the folder named by NUMSCALE_GPT2 (a.npz, b.npz)"`` when the variable named it,
    otherwise ``"the folder 'reference' (a.npz, b.npz)"`` (the base name only). A list
    longer than :data:`DESCRIPTION_WIDTH` characters is cut to ``"(3 files: a.npz, …)"``.
    """
    kind = "folder" if path.is_dir() else "file"
    if choice.origin == choice.env_var:
        where = f"the {kind} named by {choice.env_var}"
        if kind == "file":
            where += f" ({path.name})"
    else:
        where = f"the {kind} {path.name!r}"
    if files and kind == "folder":
        listed = f"{where} ({', '.join(files)})"
        if len(listed) > DESCRIPTION_WIDTH and len(files) > 1:
            listed = f"{where} ({plural(len(files), 'file')}: {files[0]}, …)"
        where = listed
    return where


def plural(count: int, word: str, words: str | None = None) -> str:
    """``"1 tensor"``, ``"2 tensors"``, ``"1,234 tensors"``."""
    return f"{count:,} {word if count == 1 else (words or word + 's')}"


def wrap(text: str, width: int = NOTICE_WIDTH) -> str:
    """``text`` wrapped to lines of at most ``width`` characters (paragraphs kept)."""
    return "\n".join(
        textwrap.fill(line, width, break_on_hyphens=False, break_long_words=False)
        if line
        else ""
        for line in text.splitlines()
    )


def short_path(path: str | os.PathLike) -> str:
    """A file's base name: what messages and notices show instead of a machine path."""
    return Path(path).name


# ------------------------------------------------------------------ the hub


def offline() -> bool:
    """Whether ``HF_HUB_OFFLINE`` forbids the network."""
    return (os.environ.get("HF_HUB_OFFLINE") or "").strip().lower() in {
        "1",
        "true",
        "yes",
        "on",
    }


def endpoint() -> str:
    """The hub endpoint: ``HF_ENDPOINT`` or https://huggingface.co."""
    return (os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")


def endpoint_reachable(url: str | None = None, timeout: float = PROBE_TIMEOUT) -> bool:
    """Whether an HTTP ``HEAD url`` gets a usable answer within ``timeout`` seconds.

    Usable: a success or redirect status, or 401/403 (the hub answered but wants a token).
    A 404 or a server error counts as unreachable: some networks answer every request
    with an error page. The request runs in a daemon thread that is abandoned after
    ``timeout``, so a stuck DNS lookup or a silent server cannot hold the caller longer.
    """
    url = url or endpoint()
    result: list[bool] = []

    def probe() -> None:
        try:
            request = urllib.request.Request(url, method="HEAD")
            with urllib.request.urlopen(request, timeout=timeout) as response:
                result.append(response.status < 400)
        except urllib.error.HTTPError as exc:
            result.append(exc.code in (401, 403))
        except Exception:  # noqa: BLE001 - any other failure means unreachable
            result.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(result and result[0])


def hub_cache_dir() -> str | None:
    """The hub cache named by the environment now (the hub client reads it at import)."""
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ.get("HF_HUB_CACHE")
    if os.environ.get("HF_HOME"):
        return os.path.join(os.environ.get("HF_HOME", ""), "hub")
    return None


def environment_key() -> tuple:
    """What a hub look-up depends on, for caching its result in the process."""
    return (
        offline(),
        endpoint(),
        os.environ.get("HF_HOME"),
        os.environ.get("HF_HUB_CACHE"),
    )


def hub_file(
    repo_id: str, filename: str, *, local_only: bool, repo_type: str = "model"
) -> Path:
    """One file of a hub repository, from the local cache only or downloading it."""
    from huggingface_hub import hf_hub_download

    return Path(
        hf_hub_download(
            repo_id,
            filename,
            repo_type=repo_type,
            local_files_only=local_only,
            endpoint=endpoint(),
            cache_dir=hub_cache_dir(),
        )
    )


def _cache_root() -> Path:
    """The hub cache folder the hub client uses (HF_HUB_CACHE, HF_HOME/hub, or
    $XDG_CACHE_HOME/huggingface/hub, by default ~/.cache/huggingface/hub)."""
    named = hub_cache_dir()
    if named:
        return Path(named).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(
        os.path.expanduser("~"), ".cache"
    )
    return Path(xdg) / "huggingface" / "hub"


def _maybe_cached(repo_id: str, repo_type: str) -> bool:
    """False when the hub cache has no folder for the repository at all (then nothing of it
    is cached and the hub client need not be imported)."""
    kind = {"model": "models", "dataset": "datasets", "space": "spaces"}.get(
        repo_type, repo_type
    )
    return (_cache_root() / f"{kind}--{repo_id.replace('/', '--')}").exists()


_PROBES: dict[tuple, bool] = {}


def _reachable_cached(url: str) -> bool:
    key = (url, *environment_key())
    if key not in _PROBES:
        _PROBES[key] = endpoint_reachable(url)
    return _PROBES[key]


def clear_cache() -> None:
    """Forget the reachability probes made in this process."""
    _PROBES.clear()


@dataclass(frozen=True)
class HubFiles:
    """Files fetched from the hub: ``paths`` by file name, and ``how`` they were had
    (``"local Hugging Face cache"`` or ``"downloaded"``)."""

    paths: dict[str, Path]
    how: str


def fetch_hub_files(
    choice: Choice,
    repo_id: str,
    filenames: Sequence[str],
    repo_type: str = "model",
    advice: str = "",
) -> HubFiles:
    """The named files of a hub repository: from the local cache, else downloaded.

    When a file is not cached: offline (``HF_HUB_OFFLINE``) or an endpoint that does not
    answer a probe within :data:`PROBE_TIMEOUT` seconds raises ``choice.error(...)``
    (:class:`SourceUnavailable` for the default source); so does a failed download.
    """
    paths: dict[str, Path] = {}
    missing = list(filenames)
    if _maybe_cached(repo_id, repo_type):  # else skip importing the hub client (~1 s)
        try:
            import huggingface_hub  # noqa: F401
        except ImportError:  # pragma: no cover - installed with the book
            raise choice.error(
                f"huggingface_hub is not installed, so hub id {repo_id!r} "
                f"cannot be read",
                advice,
            ) from None
        missing = []
        for name in filenames:
            try:
                paths[name] = hub_file(
                    repo_id, name, local_only=True, repo_type=repo_type
                )
            except Exception:  # noqa: BLE001 - not cached (LocalEntryNotFoundError, ...)
                missing.append(name)
        if not missing:
            return HubFiles(paths, "local Hugging Face cache")
    where = f"{repo_id}/{missing[0]}"
    if offline():
        raise choice.error(
            f"{where} is not in the local Hugging Face cache and HF_HUB_OFFLINE is set",
            advice,
        )
    kind = "datasets/" if repo_type == "dataset" else ""
    probe_url = f"{endpoint()}/{kind}{repo_id}/resolve/main/{missing[0]}"
    if not _reachable_cached(probe_url):
        raise choice.error(
            f"{where} is not in the local Hugging Face cache and the hub "
            f"({endpoint()}) did not answer within {PROBE_TIMEOUT} s",
            advice,
        )
    try:
        import huggingface_hub  # noqa: F401
    except ImportError:  # pragma: no cover - installed with the book
        raise choice.error(
            f"huggingface_hub is not installed, so hub id {repo_id!r} cannot be read",
            advice,
        ) from None
    for name in missing:
        try:
            paths[name] = hub_file(repo_id, name, local_only=False, repo_type=repo_type)
        except Exception as exc:  # noqa: BLE001 - network, auth, missing repo or file
            raise choice.error(
                f"could not download {repo_id}/{name}: {type(exc).__name__}: {exc}",
                advice,
            ) from exc
    return HubFiles(paths, "downloaded")
