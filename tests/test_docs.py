"""README.md and docs/ against the code: the generated settings table, every relative link, the
files and settings the pages name, and the README's walk-through, run as written."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from matcher.config import Settings
from matcher.settings_doc import PREFIX, page_block, settings_block
from tests.api.test_serve import free_port
from tests.data import REPO_ROOT, fgnet_photo

PAGES = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^(```|~~~)")
# Paths of the repository the pages name in prose and tables (`matcher/api/limits.py`).
REPO_PATH = re.compile(r"(?<![\w./-])(?:matcher|scripts|tests|models)/[\w./-]*[\w/]")
SETTING = re.compile(rf"\b{PREFIX}[A-Z0-9_]*[A-Z0-9]\b(?!_?\*)")
# Environment variables of the tests and of CI, not settings of the service.
NOT_SETTINGS = {"MATCHER_TEST_DATA", "MATCHER_REQUIRE_TEST_DATA", "MATCHER_TEST_POSTGRES_URL",
                "MATCHER_REQUIRE_BROWSER", "MATCHER_SOAK_SECONDS", "MATCHER_REVIEW_SCREENSHOTS"}


def prose(page: Path) -> list[tuple[int, str]]:
    """The page's lines outside fenced code blocks, numbered from 1."""
    lines, fenced = [], False
    for number, line in enumerate(page.read_text().splitlines(), start=1):
        if FENCE.match(line.strip()):
            fenced = not fenced
        elif not fenced:
            lines.append((number, line))
    return lines


def anchors(page: Path) -> set[str]:
    """GitHub's anchors of the page's headings: lower case, punctuation dropped, spaces to
    hyphens."""
    found = set()
    for _, line in prose(page):
        if match := re.match(r"#{1,6}\s+(.*)", line):
            slug = re.sub(r"[^\w\- ]", "", match.group(1).strip().lower()).replace(" ", "-")
            found.add(slug)
    return found


def test_settings_table_is_generated_from_config() -> None:
    page = REPO_ROOT / "docs" / "operations.md"
    assert page_block(page.read_text()) == settings_block(), (
        "docs/operations.md's settings table differs from matcher/config.py: run "
        ".venv/bin/python scripts/settings_doc.py")


def test_every_setting_is_in_the_table() -> None:
    table = settings_block()
    for name in Settings.model_fields:
        assert f"`{PREFIX}{name.upper()}`" in table


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_relative_links_point_at_files(page: Path) -> None:
    broken = []
    for number, line in prose(page):
        for target in LINK.findall(line):
            if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:...
                continue
            path, _, anchor = target.partition("#")
            file = (page.parent / path).resolve() if path else page
            if not file.exists():
                broken.append(f"{page.name}:{number}: {target} (no such file)")
            elif anchor and file.suffix == ".md" and anchor not in anchors(file):
                broken.append(f"{page.name}:{number}: {target} (no such heading)")
    assert not broken, "\n".join(broken)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_named_repository_paths_exist(page: Path) -> None:
    """A module, script or test a page names exists: the architecture picture and the test
    tables go stale the day a file moves, unless this fails."""
    missing = [f"{page.name}:{number}: {path}" for number, line in prose(page)
               for path in REPO_PATH.findall(line)
               if not (REPO_ROOT / path).exists()]
    assert not missing, "\n".join(missing)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_named_settings_exist(page: Path) -> None:
    known = {f"{PREFIX}{name.upper()}" for name in Settings.model_fields} | NOT_SETTINGS
    unknown = sorted({f"{page.name}: {name}" for _, line in prose(page)
                      for name in SETTING.findall(line) if name not in known})
    assert not unknown, "\n".join(unknown)


METHOD = r"(?:GET|POST|PUT|PATCH|DELETE)"
ROUTE = re.compile(rf"((?:{METHOD}`?/`?)*{METHOD})\s+(/[^\s`(]*)")


def api_table_routes() -> set[tuple[str, str]]:
    """(method, path) of every endpoint docs/api.md's table names, `{...}` as `{}`."""
    found = set()
    for _, line in prose(REPO_ROOT / "docs" / "api.md"):
        if line.startswith("| `") and line.count("|") >= 3:
            endpoint = line.split(" | ")[0]
            for methods, path in ROUTE.findall(endpoint):
                found |= {(method, re.sub(r"\{[^}]*\}", "{}", path))
                          for method in re.findall(METHOD, methods)}
    return found


def test_api_table_names_every_route(tmp_path: Path) -> None:
    """The routes and roles table of docs/api.md names every operation of the OpenAPI schema
    and none that is gone (the schema itself is the reference for parameters and bodies)."""
    from matcher.api import create_app

    schema = create_app(Settings(data_dir=tmp_path)).openapi()
    served = {(method.upper(), re.sub(r"\{[^}]*\}", "{}", path))
              for path, operations in schema["paths"].items() for method in operations}
    table = api_table_routes()
    assert not served - table, f"routes missing from docs/api.md: {sorted(served - table)}"
    assert not table - served, f"docs/api.md names routes that are gone: {sorted(table - served)}"


def walk_through() -> str:
    """The README's five-minute walk-through: the first shell block under its heading."""
    text = (REPO_ROOT / "README.md").read_text()
    section = text[text.index("## Five minutes"):]
    match = re.search(r"```sh\n(.*?)```", section, re.S)
    assert match, "README's walk-through has no ```sh block"
    return match.group(1)


def run_script(script: str, folder: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    """bash runs the script in its own process group, which is killed afterwards whatever
    happened: the walk-through leaves a server in the background."""
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(PREFIX) or name == "MATCHER_TEST_DATA"}
    env["MATCHER_THREADS"] = "1"
    process = subprocess.Popen(["bash", "-e", "-o", "pipefail", "-c", script], cwd=folder,
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, err = process.communicate()
        pytest.fail(f"the walk-through did not end in {timeout} s\n{out}\n{err[-3000:]}")
    finally:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def test_walk_through_runs_as_written(tmp_path: Path, settings: Settings) -> None:
    """Every command of the walk-through, on a fresh data dir and a free port, with two
    FG-NET photos of one child: the case ends found, with its candidate confirmed."""
    script = walk_through()
    assert "8000" in script
    script = script.replace("8000", str(free_port()))
    (tmp_path / "ada-age8.jpg").write_bytes(fgnet_photo("001A08.JPG"))
    (tmp_path / "tip.jpg").write_bytes(fgnet_photo("001A10.JPG"))
    (tmp_path / ".venv").symlink_to(REPO_ROOT / ".venv")
    if settings.cache_dir.is_dir():  # the session's converted weights: no second conversion
        shutil.copytree(settings.cache_dir, tmp_path / "demo" / "cache")
    done = run_script(script, tmp_path, timeout=600)
    log = (tmp_path / "serve.log").read_text() if (tmp_path / "serve.log").exists() else ""
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr[-3000:]}\n{log}"
    out = re.sub(r"\s", "", done.stdout)
    assert '"faces":[{"box"' in out and '"fit":true' in out  # the case photo and the sighting
    assert '"rank":1' in out and '"under_threshold":true' in out  # Ada is its candidate
    assert '"verdict":"match"' in out and '"candidate_status":"confirmed"' in out
    assert '"status":"found"' in out
    assert (tmp_path / "face.jpg").read_bytes()[:2] == b"\xff\xd8"  # the crop, a JPEG
