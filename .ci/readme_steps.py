"""Follow README.rst's steps literally, in a fresh copy of the checkout and a fresh venv.

Run by ``.ci/run``::

    python .ci/readme_steps.py --skip="-m slow"

The steps are read from README.rst and docs/getting_started.rst themselves, so that they
cannot drift from what those say: every command of their literal blocks (``::``; where a
block shows a prompt, ``$ command`` lines only, the rest being output) and each file's
``.. code-block:: python`` blocks, run as one script where the first stands, as a reader
pastes them into one session. A command the getting-started page repeats from README.rst
runs once. The commands run in order, with bash, from the root of a copy of the
checkout's files (tracked, and untracked but not ignored: no earlier build or egg-info is
reused; a git repository of its own, as a clone is) and with a new virtual environment's
``bin`` first on ``PATH``, as in a shell where it is activated; the first that fails stops
the run. Each step's time is printed at the end.

``--skip TEXT`` lists a command that contains TEXT as skipped instead of running it;
``--list`` prints the steps and runs nothing. Only the standard library is used.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
import venv
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.rst"
# The getting-started page repeats README's commands (tests/test_readme_steps.py checks
# that it does), which run once; its Python blocks are its own.
DOCUMENTS = [README, ROOT / "docs" / "getting_started.rst"]
SHELL_LANGUAGES = {"bash", "console", "shell", "sh"}
TEST_COMMAND = re.compile(r"^python -m pytest\b")


@dataclass(frozen=True)
class Step:
    kind: str  # "shell" or "python"
    text: str
    where: str  # file:line of the block

    def describe(self):
        return self.text if self.kind == "shell" else f"the Python blocks ({self.where})"


def _block_content(lines, start, indent):
    """The lines of the block whose marker line is ``start - 1``, dedented."""
    end = start
    while end < len(lines):
        line = lines[end]
        if line.strip() and len(line) - len(line.lstrip()) <= indent:
            break
        end += 1
    body = lines[start:end]
    # A directive's options (":caption: ...") come first, before a blank line.
    while body and body[0].strip().startswith(":"):
        body = body[1:]
    return textwrap.dedent("\n".join(body)).strip("\n")


def literal_blocks(text):
    """``(language, content, line number)`` of each literal block and code-block in order.

    A paragraph ending in ``::`` opens a literal block (language ``"literal"``); another
    directive that ends in ``::`` (``.. note::``) does not.
    """
    lines = text.splitlines()
    blocks = []
    for number, line in enumerate(lines):
        indent = len(line) - len(line.lstrip())
        if match := re.match(r"\s*\.\. code-block::\s*(\S+)", line):
            language = match.group(1)
        elif line.rstrip().endswith("::") and not re.match(r"\s*\.\. ", line):
            language = "literal"
        else:
            continue
        content = _block_content(lines, number + 1, indent)
        if content:
            blocks.append((language, content, number + 1))
    return blocks


def _commands(content):
    """A shell block's commands: its ``$`` lines where it shows a prompt, else every line."""
    lines = [line.rstrip() for line in content.splitlines() if line.strip()]
    if any(line.startswith("$ ") for line in lines):
        lines = [line[2:] for line in lines if line.startswith("$ ")]
    commands, pending = [], ""
    for line in lines:
        line = line.lstrip() if pending else line
        if line.endswith("\\"):
            pending += line[:-1].rstrip() + " "
        else:
            commands.append(pending + line)
            pending = ""
    return commands


def read_steps(path):
    """The steps of ``path`` in order, its Python blocks one script where the first stands.

    One script, as a reader pastes them into one session: a later block may use what an
    earlier one made.
    """
    name = Path(path).name
    steps, python, python_at = [], [], None
    for language, content, line in literal_blocks(Path(path).read_text()):
        if language == "python":
            python.append((content, line))
            python_at = len(steps) if python_at is None else python_at
        elif language == "literal" or language in SHELL_LANGUAGES:
            steps += [Step("shell", command, f"{name}:{line}") for command in _commands(content)]
    if python:
        where = ", ".join(f"{name}:{line}" for _, line in python)
        script = "\n\n".join(code for code, _ in python) + "\n"
        steps.insert(python_at, Step("python", script, where))
    return steps


def test_commands(steps):
    """The shell commands that run the test suite."""
    return [step.text for step in steps if step.kind == "shell" and TEST_COMMAND.match(step.text)]


def _copy_checkout(destination):
    """The checkout's tracked and untracked-but-not-ignored files, as a fresh clone has them.

    A git repository of its own (no history), for the commands that need one.
    """
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for relative in filter(None, listed.split("\0")):
        source = ROOT / relative
        if source.is_file():  # a tracked file deleted from the work tree is not copied
            (destination / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / relative)
    subprocess.run(["git", "init", "--quiet", str(destination)], check=True)


def _environment(venv_dir):
    """This process's environment with the venv activated and nothing else on sys.path."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["VIRTUAL_ENV"] = str(venv_dir)
    env["PATH"] = f"{venv_dir / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return env


def run_steps(steps, skip, workdir, venv_dir):
    """Run the steps in order, each announced and timed; stop at the first that fails.

    Returns ``(description, seconds or None where skipped, exit status)`` of each step
    reached.
    """
    env = _environment(venv_dir)
    results = []
    for step in steps:
        print(f"\n== {step.where}: {step.describe()}", flush=True)
        if step.kind == "shell" and any(text in step.text for text in skip):
            print("skipped (--skip)", flush=True)
            results.append((step.describe(), None, 0))
            continue
        if step.kind == "shell":
            command = ["bash", "-c", step.text]
        else:
            script = venv_dir.parent / "readme_blocks.py"
            script.write_text(step.text)
            command = ["python", str(script)]
        start = time.perf_counter()
        status = subprocess.run(command, cwd=workdir, env=env, check=False).returncode
        results.append((step.describe(), time.perf_counter() - start, status))
        print(f"-- exit status {status} after {results[-1][1]:.1f} s", flush=True)
        if status != 0:
            break
    return results


def print_summary(results):
    print("\n== Time of each step, in a fresh venv")
    for description, seconds, status in results:
        took = "skipped" if seconds is None else f"{seconds:7.1f} s"
        failed = "" if status == 0 else f"  FAILED (exit status {status})"
        print(f"{took:>9}  {description}{failed}")


def all_steps(paths):
    """The steps of each file in turn; a command given by an earlier file is not repeated."""
    steps, seen = [], set()
    for path in paths:
        for step in read_steps(path):
            if step.kind == "python" or step.text not in seen:
                steps.append(step)
                seen.add(step.text)
    return steps


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "files", nargs="*", type=Path, default=DOCUMENTS, help="default: %(default)s"
    )
    parser.add_argument("--skip", action="append", default=[], metavar="TEXT")
    parser.add_argument("--list", action="store_true", help="print the steps; run nothing")
    args = parser.parse_args(argv)
    steps = all_steps(args.files)
    if args.list:
        for step in steps:
            print(f"{step.where}: {step.describe()}")
        return 0
    with tempfile.TemporaryDirectory(prefix="readme_steps_") as tmp:
        workdir, venv_dir = Path(tmp) / "checkout", Path(tmp) / "venv"
        _copy_checkout(workdir)
        venv.create(venv_dir, with_pip=True)
        results = run_steps(steps, args.skip, workdir, venv_dir)
    print_summary(results)
    return 1 if any(status != 0 for _, _, status in results) else 0


if __name__ == "__main__":
    sys.exit(main())
