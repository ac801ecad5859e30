"""benchmarks/results holds the current result of each benchmark command and nothing
else, and every results path the documentation cites exists."""

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
COMMANDS = sorted(
    path.stem for path in (ROOT / "benchmarks").iterdir() if path.suffix in (".py", ".sh")
)
# What cites results: the README, the changelog, the docs' sources, the examples and the
# package's docstrings and comments.
CITING = ["README.rst", "CHANGELOG.rst", "docs", "examples", "sklearn_cebm"]
RESULTS_PATH = re.compile(r"benchmarks/results/[\w./-]*[\w/]")


def _tracked_sources():
    # Untracked files too: README's fresh-venv run copies the checkout into a new
    # repository with no commit, where every file is untracked.
    try:
        listed = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", *CITING],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
    except (OSError, subprocess.CalledProcessError):  # not a git checkout
        listed = [
            str(path.relative_to(ROOT))
            for name in CITING
            for path in ([ROOT / name] if (ROOT / name).is_file() else (ROOT / name).rglob("*"))
        ]
    return [ROOT / name for name in listed if name.endswith((".rst", ".py", ".txt", ".md"))]


def _cited_paths():
    cited = []
    for path in _tracked_sources():
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for match in RESULTS_PATH.finditer(line):
                # ``git show <commit>:benchmarks/results/...`` cites git history.
                if not re.search(r"git show \w+:$", line[: match.start()]):
                    cited.append((f"{path.relative_to(ROOT)}:{number}", match.group()))
    return cited


def test_benchmark_results_cited_by_the_docs_exist():
    cited = _cited_paths()
    assert cited  # the pattern finds what it should
    missing = [(where, path) for where, path in cited if not (ROOT / path).exists()]
    assert not missing


def test_benchmark_results_hold_no_scripts():
    scripts = [path for path in RESULTS.rglob("*") if path.suffix in (".py", ".sh")]
    assert not scripts


@pytest.mark.parametrize("entry", sorted(path.name for path in RESULTS.iterdir()))
def test_benchmark_results_entry_is_named_after_a_command(entry):
    if entry == "README.md":
        return
    stem = entry.split(".")[0]
    assert stem in COMMANDS, f"{entry} is not <command>.md, <command>.json or <command>/"
