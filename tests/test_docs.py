"""The Markdown pages (README.md, BENCHMARKS.md, docs/) cannot drift from the code:

- every relative link points at a file that exists and, with a #fragment, at a heading of that
  page: a section moved from one page to another must not leave a dead link behind;
- every code name they quote in backticks resolves: a repository path exists, a dotted Python
  name of the project imports (see `resolve`);
- every script of bench/ is in docs/development.md's list of them;
- every command they quote still runs: `python -m bench.NAME` answers `--help` with each long
  option quoted, and the console scripts, luigi tasks and make targets named exist.

docs/history.md records superseded figures with the names and commands of their day, so only
its links are checked."""

from __future__ import annotations

import configparser
import dataclasses
import fnmatch
import functools
import importlib
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import luigi
import pytest

from tests.helpers import COMMAND_TIMEOUT, REPO

PAGES = [REPO / "README.md", REPO / "BENCHMARKS.md", *sorted((REPO / "docs").glob("*.md"))]
HISTORY = REPO / "docs" / "history.md"
CURRENT_PAGES = [page for page in PAGES if page != HISTORY]
DEVELOPMENT = REPO / "docs" / "development.md"
LINK = re.compile(r"\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"`([^`]+)`")

# A backticked dotted name is checked when its first part is the project's: a package, a module
# of the library (`ranking.top_k` is movielens_als.ranking.top_k), or one of these short names.
PACKAGES = {"movielens_als", "pipeline", "storage", "spark_jobs", "bench", "tests"}
LIBRARY_MODULES = {path.stem for path in (REPO / "movielens_als").glob("*.py") if path.stem != "__init__"}
SHORT_NAMES = {"Store": "storage.Store", "Judge": "movielens_als.metrics.Judge"}
DOTTED = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+")
# ...unless its last part says it is a file (`model.json`, `report.html`, `luigi.cfg`).
FILE_SUFFIXES = {"json", "parquet", "npy", "csv", "dat", "data", "zip", "md5", "html", "md", "py", "c", "so", "cfg"}
# A path is a placeholder or a glob, not a file of the repository; a name with a placeholder
# part (`python -m bench.NAME`) is not a name.
PLACEHOLDER = re.compile(r"[<>*…]|\.\.\.")
PLACEHOLDER_PARTS = {"NAME"}
BENCH_COMMAND = re.compile(r"python3? -m bench\.([a-z_][a-z0-9_]*)")
# Where a quoted command ends: a comment, the next command, or arguments for another program.
COMMAND_END = re.compile(r"\s#|&&|;|\s&(?:\s|$)|\s--(?:\s|$)")
LONG_OPTION = re.compile(r"(?<![\w-])--[a-z][\w-]*")
CONSOLE_SCRIPT = re.compile(r"(?:^|\s)(?:\.venv/bin/)?(movielens-als[\w-]*)(?=\s|$)")
BENCH_IMPORT = re.compile(r"^\s*(?:from bench import |(?:from|import) bench\.)(\w+)", re.MULTILINE)
LUIGI_TASK = re.compile(r"luigi --module pipeline (\w+)")
MAKE_TARGET = re.compile(r"(?:^|\s)make ([a-z][\w-]*)")


def prose(page: Path) -> str:
    """The page with its code blocks blanked, whose brackets are code, not links (their lines
    kept empty, so that line numbers stay the page's)."""
    return FENCE.sub(lambda block: "\n" * block.group().count("\n"), page.read_text())


def anchors(page: Path) -> set[str]:
    """The ids GitHub gives the page's headings: lower case, punctuation other than hyphens
    dropped, spaces made hyphens."""
    headings = re.findall(r"^#+ (.+)$", prose(page), re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def relative_links(page: Path) -> list[str]:
    return [link for link in LINK.findall(prose(page)) if not re.match(r"[a-z]+:", link)]


def shown(page: Path) -> str:
    """The page's path as a message names it: from the repository's root."""
    return str(page.relative_to(REPO)) if page.is_relative_to(REPO) else page.name


def line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def inline_code(page: Path) -> Iterator[tuple[int, str]]:
    """Each backticked span outside code blocks, with its line, whitespace (a line break in a
    span) made one space."""
    text = prose(page)
    for span in CODE_SPAN.finditer(text):
        yield line_of(text, span.start()), " ".join(span.group(1).split())


def code_lines(page: Path) -> Iterator[tuple[int, str]]:
    """Each line of the page's code blocks, a line ending in a backslash joined with the next."""
    text = page.read_text()
    for block in FENCE.finditer(text):
        first = line_of(text, block.start())
        lines = block.group().split("\n")[1:-1]
        start, pending = 0, ""
        for index, line in enumerate(lines):
            if not pending:
                start = index
            if line.rstrip().endswith("\\"):
                pending += line.rstrip()[:-1] + " "
                continue
            yield first + 1 + start, pending + line
            pending = ""


def quoted_code(page: Path) -> list[tuple[int, str]]:
    return sorted([*inline_code(page), *code_lines(page)])


@functools.cache
def ignored_paths() -> list[str]:
    """.gitignore's patterns: what a build step or a run makes, not what the repository holds."""
    lines = (REPO / ".gitignore").read_text().splitlines()
    return [line.strip().rstrip("/") for line in lines if line.strip() and not line.startswith("#")]


def is_ignored(path: str) -> bool:
    parts = path.rstrip("/").split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    return any(
        fnmatch.fnmatch(prefix, pattern) or ("/" not in pattern and fnmatch.fnmatch(part, pattern))
        for pattern in ignored_paths()
        for prefix, part in zip(prefixes, parts, strict=True)
    )


@functools.cache
def repository_folders() -> set[str]:
    return {path.name for path in REPO.iterdir() if path.is_dir() and path.name != ".git" and not is_ignored(path.name)}


def is_repository_path(token: str) -> bool:
    """A token names a file of the repository when it is a path under one of its top-level
    folders (`pipeline/tasks.py`, `bench/`), not a placeholder, and not something .gitignore
    says a build makes (`docker/wheelhouse`)."""
    first = token.split("/", 1)[0]
    return "/" in token and first in repository_folders() and not PLACEHOLDER.search(token) and not is_ignored(token)


def is_project_name(token: str) -> bool:
    if not DOTTED.fullmatch(token):
        return False
    first, last = token.split(".")[0], token.rsplit(".", 1)[1]
    ours = first in PACKAGES | LIBRARY_MODULES | SHORT_NAMES.keys()
    return ours and last not in FILE_SUFFIXES and not PLACEHOLDER_PARTS.intersection(token.split("."))


def full_name(name: str) -> str:
    first, _, rest = name.partition(".")
    if first in SHORT_NAMES:
        first = SHORT_NAMES[first]
    elif first in LIBRARY_MODULES:
        first = f"movielens_als.{first}"
    return f"{first}.{rest}"


def has_member(owner: object, member: str) -> bool:
    """An attribute, or a field a dataclass or a class's annotations declare without a default."""
    if hasattr(owner, member):
        return True
    fields = {field.name for field in dataclasses.fields(owner)} if dataclasses.is_dataclass(owner) else set()
    annotated = {name for cls in getattr(owner, "__mro__", ()) for name in getattr(cls, "__annotations__", {})}
    return member in fields | annotated


def resolve(name: str) -> str | None:
    """Why the quoted Python name does not resolve, or None when it does: the longest prefix
    of its full name that is a module is imported, and each further part looked up in turn."""
    parts = full_name(name).split(".")
    for count in range(len(parts), 0, -1):
        module_name = ".".join(parts[:count])
        try:
            owner: object = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name == module_name or module_name.startswith(f"{error.name}."):
                continue
            return f"importing {module_name}: {error}"
        for index, member in enumerate(parts[count:], start=count):
            if not has_member(owner, member):
                return f"{'.'.join(parts[:index])} has no {member}"
            owner = getattr(owner, member, None)
        return None
    return f"no module {parts[0]}"


def unresolved_names(page: Path) -> list[str]:
    """Every code name of the page that does not resolve, as `page:line: name: why`."""
    where = shown(page)
    found = []
    for line, span in inline_code(page):
        for token in span.split():
            name = token.removesuffix("()")
            if is_repository_path(name) and not (REPO / name).exists():
                found.append(f"{where}:{line}: `{name}`: no such file in the repository")
            elif is_project_name(name) and (why := resolve(name)):
                found.append(f"{where}:{line}: `{name}`: {why}")
    return found


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_resolves(page):
    dead = []
    for link in relative_links(page):
        path, _, fragment = link.partition("#")
        target = (page.parent / path).resolve() if path else page
        if not target.exists() or (fragment and target.suffix == ".md" and fragment not in anchors(target)):
            dead.append(link)
    assert dead == []


def test_the_check_sees_a_dead_link_and_a_dead_anchor(tmp_path):
    (tmp_path / "other.md").write_text("# A heading, with punctuation\n")
    page = tmp_path / "page.md"
    page.write_text("[a](other.md#a-heading-with-punctuation) [b](missing.md) [c](https://example.org)\n")
    assert relative_links(page) == ["other.md#a-heading-with-punctuation", "missing.md"]
    assert anchors(tmp_path / "other.md") == {"a-heading-with-punctuation"}


def test_every_quoted_code_name_resolves():
    unresolved = [problem for page in CURRENT_PAGES for problem in unresolved_names(page)]
    assert not unresolved, "code names the docs quote that the code no longer has:\n" + "\n".join(unresolved)


def test_the_check_sees_a_dead_path_and_a_dead_name(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "Real: `pipeline/layout.py`, `bench/`, `ranking.top_k`, `Store.create_root`, `metrics.Judge.reach`,\n"
        "`movielens_als.model.Model.parts`, `selection.tune_ease()`, `bench.kernels`; not ours or not\n"
        "code: `model.json`, `np.unique`, `path/to/ml-25m.zip`, `splits/<run>/`, `docker/wheelhouse`.\n"
        "```sh\n`metrics.in_a_code_block`\n```\n"
        "Dead: `pipeline/tasks.pyc`, `metrics.compare_rankers`, `Store.key_of_nothing`,\n"
        "`python -m bench.kernels --items 5 spark_jobs/gone.py`, `movielens_als.gone.f`.\n"
    )
    assert unresolved_names(page) == [
        "page.md:7: `pipeline/tasks.pyc`: no such file in the repository",
        "page.md:7: `metrics.compare_rankers`: movielens_als.metrics has no compare_rankers",
        "page.md:7: `Store.key_of_nothing`: storage.Store has no key_of_nothing",
        "page.md:8: `spark_jobs/gone.py`: no such file in the repository",
        "page.md:8: `movielens_als.gone.f`: movielens_als has no gone",
    ]


def bench_scripts(folder: Path = REPO / "bench") -> list[str]:
    """The files of bench/ a user runs: every .py and .c but the package's __init__.py and the
    modules other bench files import (the shared harness)."""
    files = [*folder.glob("*.py"), *folder.glob("*.c")]
    imported = {module for path in files for module in BENCH_IMPORT.findall(path.read_text()) if module != path.stem}
    return sorted(path.name for path in files if path.stem not in imported | {"__init__"})


def listed_bench_scripts(page: Path) -> set[str]:
    """The bench/ files the page's section "The benchmark scripts" names in backticks: as
    `NAME`, `NAME.py`, `bench/NAME.c` or in a `python -m bench.NAME` command."""
    section = re.search(r"^## The benchmark scripts$(.*?)(?=^## |\Z)", page.read_text(), re.MULTILINE | re.DOTALL)
    assert section, f"{shown(page)} has no section '## The benchmark scripts'"
    listed = set()
    for span in CODE_SPAN.findall(section.group(1)):
        listed |= set(re.findall(r"bench[./](\w+)", span))
        if name := re.fullmatch(r"(\w+)(?:\.py|\.c)?", span):
            listed.add(name.group(1))
    return listed


def unlisted_bench_scripts(page: Path, folder: Path = REPO / "bench") -> list[str]:
    return [name for name in bench_scripts(folder) if Path(name).stem not in listed_bench_scripts(page)]


def test_every_bench_script_is_listed_in_development_md():
    missing = unlisted_bench_scripts(DEVELOPMENT)
    assert not missing, (
        f"bench/ scripts missing from {shown(DEVELOPMENT)}'s 'The benchmark scripts' (add a row "
        f"saying what each measures): {', '.join(missing)}"
    )


def test_the_bench_list_check_sees_a_missing_script(tmp_path):
    bench = tmp_path / "bench"
    bench.mkdir()
    for name, text in {
        "__init__.py": "",
        "harness.py": "import json\n",
        "kernels.py": "from bench.harness import machine\n",
        "protocols.py": "from bench import harness\nimport bench.harness\n",
        "chains.py": "",
        "submitted.py": "",
        "blas_calls.c": "",
    }.items():
        (bench / name).write_text(text)
    page = tmp_path / "development.md"
    page.write_text(
        "## The benchmark scripts\n\n| `kernels` | ... | `python -m bench.protocols` |\n"
        "| `compare_bare` (+ `submitted.py`) | `bench/blas_calls.c` |\n\n## Next\n\n`chains`\n"
    )
    assert listed_bench_scripts(page) == {"kernels", "protocols", "compare_bare", "submitted", "blas_calls"}
    assert unlisted_bench_scripts(page, bench) == ["chains.py"]


def bench_commands(pages: list[Path]) -> dict[str, dict[str, list[str]]]:
    """Each bench module the pages run as `python -m bench.NAME`, the long options they give it,
    and where (page:line)."""
    commands: dict[str, dict[str, list[str]]] = {}
    for page in pages:
        for line, code in quoted_code(page):
            for match in BENCH_COMMAND.finditer(code):
                arguments = COMMAND_END.split(code[match.end() :], maxsplit=1)[0]
                options = commands.setdefault(match.group(1), {})
                for option in ["", *LONG_OPTION.findall(arguments)]:
                    options.setdefault(option, []).append(f"{shown(page)}:{line}")
    return commands


def help_of(modules: list[str]) -> dict[str, subprocess.CompletedProcess]:
    """Each module's `--help`, all at once, with the test's interpreter and no Java to be found:
    answering --help must not start a JVM."""
    environment = os.environ | {"JAVA_HOME": "/nonexistent/no-jvm-for-help"}
    processes = {
        module: subprocess.Popen(
            [sys.executable, "-m", f"bench.{module}", "--help"],
            cwd=REPO,
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for module in modules
    }
    results = {}
    try:
        for module, process in processes.items():
            stdout, stderr = process.communicate(timeout=COMMAND_TIMEOUT)
            results[module] = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()
    return results


def help_problems(
    commands: dict[str, dict[str, list[str]]], helps: dict[str, subprocess.CompletedProcess]
) -> list[str]:
    """Each quoted bench command whose --help failed, and each option it was given that its
    --help does not list (whole: argparse would take `--rating` for `--ratings`, a reader not)."""
    problems = []
    for module, result in helps.items():
        if result.returncode != 0:
            last = result.stderr.strip().splitlines()[-1:] or ["no output"]
            where = ", ".join(commands[module][""])
            problems.append(f"python -m bench.{module} --help exited {result.returncode} ({where}): {last[0]}")
            continue
        for option, places in commands[module].items():
            if option and not re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", result.stdout):
                problems.append(f"bench.{module} has no {option} (quoted at {', '.join(places)})")
    return problems


@pytest.mark.e2e
def test_every_quoted_bench_command_answers_help_with_its_options():
    commands = bench_commands(CURRENT_PAGES)
    assert "compare_bare" in commands, "the pages quote no python -m bench.compare_bare: is the parser blind?"
    problems = help_problems(commands, help_of(sorted(commands)))
    assert not problems, "commands the docs quote that no longer run:\n" + "\n".join(problems)


def test_the_help_check_sees_a_failing_command_and_a_missing_option():
    commands = {
        "kernels": {"": ["a.md:1", "a.md:2"], "--ratings": ["a.md:1"], "--rating": ["a.md:2"]},
        "gone": {"": ["a.md:3"]},
    }
    helps = {
        "kernels": subprocess.CompletedProcess([], 0, "usage: kernels [-h] [--ratings RATINGS]\n", ""),
        "gone": subprocess.CompletedProcess([], 1, "", "Traceback...\nNo module named bench.gone\n"),
    }
    assert help_problems(commands, helps) == [
        "bench.kernels has no --rating (quoted at a.md:2)",
        "python -m bench.gone --help exited 1 (a.md:3): No module named bench.gone",
    ]


def test_the_command_parser_reads_options_until_the_command_ends(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "Run `.venv/bin/python -m bench.kernels --ratings 5 [--items 3]` or\n"
        "```sh\n.venv/bin/python -m bench.fit_settings --zip z \\\n    --tree a=b a   # not --this\n"
        "python -m bench.chains --runs 1 -- --workers 2 && python -m bench.NAME --x\n```\n"
    )
    assert bench_commands([page]) == {
        "kernels": {"": ["page.md:1"], "--ratings": ["page.md:1"], "--items": ["page.md:1"]},
        "fit_settings": {"": ["page.md:3"], "--zip": ["page.md:3"], "--tree": ["page.md:3"]},
        "chains": {"": ["page.md:5"], "--runs": ["page.md:5"]},
    }


def console_scripts() -> set[str]:
    setup = configparser.ConfigParser()
    setup.read(REPO / "setup.cfg")
    entries = setup["options.entry_points"]["console_scripts"]
    return {line.split("=")[0].strip() for line in entries.splitlines() if line.strip()}


def make_targets() -> set[str]:
    return set(re.findall(r"^([a-z][\w-]*):", (REPO / "Makefile").read_text(), re.MULTILINE))


def pipeline_tasks() -> set[str]:
    pipeline = importlib.import_module("pipeline")
    return {
        name
        for name in dir(pipeline)
        if isinstance(getattr(pipeline, name), type) and issubclass(getattr(pipeline, name), luigi.Task)
    }


def unknown_commands(page: Path) -> list[str]:
    """The console scripts, `luigi --module pipeline` tasks and make targets the page quotes
    that setup.cfg, the pipeline package or the Makefile do not have, as `page:line: what`."""
    checks = [
        (CONSOLE_SCRIPT, console_scripts(), "no console script {} in setup.cfg"),
        (LUIGI_TASK, pipeline_tasks(), "no task {} in the pipeline package"),
        (MAKE_TARGET, make_targets(), "no target {} in the Makefile"),
    ]
    return [
        f"{shown(page)}:{line}: " + message.format(name)
        for line, code in quoted_code(page)
        for pattern, known, message in checks
        for name in pattern.findall(code)
        if name not in known
    ]


def test_every_quoted_console_script_task_and_make_target_exists():
    unknown = [problem for page in CURRENT_PAGES for problem in unknown_commands(page)]
    assert not unknown, "commands the docs quote that no longer exist:\n" + "\n".join(unknown)


def test_the_command_check_sees_unknown_commands(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "`make run`, `.venv/bin/movielens-als-generate out.zip`, `luigi --module pipeline Report`,\n"
        "`~/.cache/movielens-als-stack`, `.venv/lib/movielens-als/libalsblas.so`\n"
        "```sh\nmake bench-all && movielens-als-train --rank 3\nluigi --module pipeline TrainedModel\n```\n"
    )
    assert unknown_commands(page) == [
        "page.md:4: no console script movielens-als-train in setup.cfg",
        "page.md:4: no target bench-all in the Makefile",
        "page.md:5: no task TrainedModel in the pipeline package",
    ]
