"""The documentation cannot drift from the code.

- Every "Messages" table of docs/*.md quotes, in backticks in its first column, a fragment of
  each message; each fragment must occur in the source of pipeline/, evaluation/ or
  submission/, so a reworded message fails here until its page is updated.
- Every stage page has such a table.
- README.md stays a front page: at most 10 KB.
- Every relative link of README.md and docs/*.md points to an existing file (and, with a
  `#anchor`, to an existing heading of it).
- Every `landscape <command> --option`, `make <target>` and `section.key` config key the pages
  show exists.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
README = ROOT / "README.md"
SOURCE_DIRS = ("pipeline", "evaluation", "submission")
STAGE_PAGES = ("preprocess.md", "train.md", "generate.md", "evaluate.md", "package.md")
README_LIMIT = 10 * 1024
MIN_FRAGMENT = 12  # shorter quotes would match by accident
FILE_EXTENSIONS = {"md", "py", "json", "toml", "csv", "html", "safetensors", "npz", "npy", "pth", "png",
                   "jpg", "zip", "txt"}


def doc_pages() -> list[Path]:
    return sorted(DOCS.glob("*.md"))


def pages() -> list[Path]:
    return [README, *doc_pages()]


def source_text() -> str:
    """Every .py file of the three packages, concatenated."""
    return "\n".join(p.read_text(encoding="utf-8") for d in SOURCE_DIRS
                     for p in sorted((ROOT / d).rglob("*.py")))


# ---------------------------------------------------------------------------- markdown parsing
def _split_row(line: str) -> list[str]:
    """Cells of a markdown table row (pipes inside backticks do not split)."""
    cells, cell, in_code = [], "", False
    for ch in line.strip().strip("|"):
        if ch == "`":
            in_code = not in_code
        if ch == "|" and not in_code:
            cells.append(cell.strip())
            cell = ""
        else:
            cell += ch
    cells.append(cell.strip())
    return cells


def messages_rows(text: str) -> list[list[str]]:
    """The body rows (cells) of every table under a heading named "Messages"."""
    rows, inside, header_seen = [], False, False
    for line in text.splitlines():
        heading = re.match(r"^#+\s+(.*)", line)
        if heading:
            inside, header_seen = heading.group(1).strip().lower().startswith("messages"), False
            continue
        if not inside or not line.lstrip().startswith("|"):
            continue
        cells = _split_row(line)
        if all(re.fullmatch(r":?-{3,}:?", c) for c in cells):
            continue  # the separator row
        if not header_seen:
            header_seen = True  # the header row
            continue
        rows.append(cells)
    return rows


def fragments(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"`", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    return {slug(m.group(1)) for m in re.finditer(r"^#+\s+(.*)$", path.read_text(encoding="utf-8"), re.M)}


def relative_links(text: str) -> list[str]:
    links = re.findall(r"\[[^\]]*\]\(([^)\s]+)\)", text)
    return [link for link in links if not re.match(r"^[a-z][a-z0-9+.-]*:", link)]


def code_snippets(text: str) -> list[str]:
    """Command lines shown in fenced blocks (continuations joined) and in inline code spans."""
    out = []
    blocks = re.findall(r"^```[^\n]*\n(.*?)^```", text, re.M | re.S)
    for block in blocks:
        joined = re.sub(r"\\\n\s*", " ", block)
        out += [line.split("#", 1)[0].strip() for line in joined.splitlines()]
    prose = re.sub(r"^```[^\n]*\n.*?^```", "", text, flags=re.M | re.S)
    out += re.findall(r"`([^`\n]+)`", prose)
    return [s for s in out if s]


def _words(snippet: str) -> list[str]:
    try:
        return shlex.split(snippet)
    except ValueError:
        return snippet.split()


# ---------------------------------------------------------------------------- the tests
def test_docs_exist():
    for name in (*STAGE_PAGES, "data.md", "configs.md", "testing.md", "model-quality.md", "multi-gpu.md"):
        assert (DOCS / name).is_file(), f"docs/{name} is missing"


@pytest.mark.parametrize("page", STAGE_PAGES)
def test_stage_pages_have_a_messages_table(page):
    rows = messages_rows((DOCS / page).read_text(encoding="utf-8"))
    assert len(rows) >= 3, f"docs/{page}: no 'Messages' table (or fewer than 3 rows)"


def test_every_quoted_message_is_in_the_code():
    source = source_text()
    checked, problems = 0, []
    for page in doc_pages():
        for cells in messages_rows(page.read_text(encoding="utf-8")):
            quoted = fragments(cells[0])
            if not quoted:
                problems.append(f"{page.name}: row without a quoted fragment: {cells[0]!r}")
            for frag in quoted:
                checked += 1
                if len(frag) < MIN_FRAGMENT:
                    problems.append(f"{page.name}: `{frag}` is too short to be distinctive")
                elif frag not in source:
                    problems.append(f"{page.name}: `{frag}` occurs nowhere in {', '.join(SOURCE_DIRS)}")
    assert checked >= 30, f"only {checked} quoted messages found: the table format changed?"
    assert not problems, "messages that drifted from the code:\n  " + "\n  ".join(problems)


def test_messages_parser_reads_the_fixed_format():
    text = ("## Messages\n\n| message | cause | fix |\n| --- | --- | --- |\n"
            "| `a b | c` and `d` | why | how |\n\n## Next\n| `x` | y |\n")
    assert messages_rows(text) == [["`a b | c` and `d`", "why", "how"]]
    assert fragments("`a b | c` and `d`") == ["a b | c", "d"]


def test_readme_is_a_front_page():
    size = README.stat().st_size
    assert size <= README_LIMIT, f"README.md is {size} bytes; keep it <= {README_LIMIT} (move reference to docs/)"


def test_relative_links_point_to_existing_files():
    problems = []
    for page in pages():
        for link in relative_links(page.read_text(encoding="utf-8")):
            target, _, anchor = link.partition("#")
            path = (page.parent / target).resolve() if target else page
            if not path.exists():
                problems.append(f"{page.relative_to(ROOT)}: {link} -> no such file")
            elif anchor and path.suffix == ".md" and anchor not in anchors(path):
                problems.append(f"{page.relative_to(ROOT)}: {link} -> no heading #{anchor}")
    assert not problems, "\n".join(problems)


def test_link_checker_sees_links():
    text = "[a](docs/x.md) [b](https://e.org) [c](#top) [d](y.md#sec)"
    assert relative_links(text) == ["docs/x.md", "#top", "y.md#sec"]
    assert slug("Training on several GPUs or machines") == "training-on-several-gpus-or-machines"
    assert slug("`landscape test` (the entries' call)") == "landscape-test-the-entries-call"


def _commands() -> dict:
    from pipeline.core.cli import cli, register_commands

    register_commands()
    return cli.commands


def _options(command) -> set[str]:
    opts = {"--help", "-h"}
    for param in command.params:
        opts.update(getattr(param, "opts", []))
        opts.update(getattr(param, "secondary_opts", []))
    return opts


def test_shown_landscape_commands_and_options_exist():
    commands, problems = _commands(), []
    for page in pages():
        for snippet in code_snippets(page.read_text(encoding="utf-8")):
            words = _words(snippet)
            if not words or words[0] != "landscape":
                continue
            rest = [w for w in words[1:] if w not in ("-v", "--verbose")]
            if not rest or rest[0].startswith("-"):
                continue
            name = rest[0]
            if name.startswith("<"):
                continue  # a placeholder: `landscape <command> --help`
            if name not in commands:
                problems.append(f"{page.name}: `landscape {name}` is not a command")
                continue
            allowed = _options(commands[name])
            for word in rest[1:]:
                opt = word.split("=", 1)[0]
                if re.fullmatch(r"--[a-z][a-z0-9_-]*", opt) and opt not in allowed:
                    problems.append(f"{page.name}: `landscape {name}` has no option {opt}")
    assert not problems, "\n".join(problems)


def _make_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    return set(re.findall(r"^([a-zA-Z][a-zA-Z0-9_-]*):", text, re.M))


def test_shown_make_targets_exist():
    targets, problems = _make_targets(), []
    for page in pages():
        for snippet in code_snippets(page.read_text(encoding="utf-8")):
            for part in re.split(r"&&|;|\|\|", snippet):
                words = _words(part.strip())
                while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):
                    words = words[1:]  # NP=4 make train
                if not words or words[0] != "make":
                    continue
                for word in words[1:]:
                    if word.startswith("-") or "=" in word or word in ("...",):
                        continue
                    if word not in targets:
                        problems.append(f"{page.name}: `make {word}` is not a Makefile target")
    assert not problems, "\n".join(problems)


def test_shown_config_keys_exist():
    """Every `section.key` the pages quote is a key of the config (a renamed key fails here)."""
    import dataclasses

    from pipeline.core.config import Config

    defaults = Config()
    sections = {f.name: {g.name for g in dataclasses.fields(getattr(defaults, f.name))}
                for f in dataclasses.fields(Config) if dataclasses.is_dataclass(getattr(defaults, f.name))}
    pattern = re.compile(r"\b(" + "|".join(sections) + r")\.([a-z][a-z0-9_]*)")
    problems, seen = [], 0
    for page in pages():
        text = page.read_text(encoding="utf-8")
        for span in re.findall(r"`([^`\n]+)`", text) + code_snippets(text):
            for section, key in pattern.findall(span):
                before = span[:span.find(f"{section}.{key}")]
                if key in FILE_EXTENSIONS or before.endswith(("/", ".", "-", "_")):
                    continue  # a file name such as model.safetensors or docs/train.md, not a key
                seen += 1
                if key not in sections[section]:
                    problems.append(f"{page.name}: `{section}.{key}` is not a config key")
    assert seen >= 20, f"only {seen} config keys found in the pages: the parser broke?"
    assert not problems, "\n".join(sorted(set(problems)))
