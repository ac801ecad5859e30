"""``.ci/readme_steps.py``: CI follows README's steps as written, and the docs agree with it.

The script reads the commands from README.rst itself; these tests check that it finds the
ones a newcomer runs, that the getting-started page gives the same, and that ``.ci/run``
runs README's test commands. The script lives outside the package, beside the CI it
serves: the tests skip where it is absent (an sdist).
"""

import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / ".ci" / "readme_steps.py"

if not SCRIPT.is_file():
    pytest.skip(f"{SCRIPT} is not in this copy of the project", allow_module_level=True)


@pytest.fixture(scope="module")
def readme_steps():
    spec = importlib.util.spec_from_file_location("readme_steps", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _shell_commands(steps):
    return [step.text for step in steps if step.kind == "shell"]


def test_readme_steps_reads_literal_blocks_prompts_and_python_blocks(readme_steps, tmp_path):
    document = tmp_path / "doc.rst"
    document.write_text(
        "Install::\n\n    pip install a\n    pip install \\\n        b\n\n"
        "Run it::\n\n    $ tool --flag\n    output that is not a command\n\n"
        ".. note::\n\n    Not a literal block.\n\n"
        ".. code-block:: python\n\n    x = 1\n\n"
        ".. code-block:: bash\n\n    echo done\n\n"
        ".. code-block:: python\n    :caption: the second block\n\n    print(x)\n\n"
        "::\n\n    last\n"
    )
    steps = readme_steps.read_steps(document)
    assert [(step.kind, step.text) for step in steps] == [
        ("shell", "pip install a"),
        ("shell", "pip install b"),
        ("shell", "tool --flag"),
        ("python", "x = 1\n\nprint(x)\n"),
        ("shell", "echo done"),
        ("shell", "last"),
    ]


def test_readme_steps_finds_readmes_install_tests_docs_and_main_job(readme_steps):
    steps = readme_steps.read_steps(readme_steps.README)
    commands = _shell_commands(steps)
    assert commands[0].startswith("pip install torch==") and commands[0].endswith('-e ".[test]"')
    for command in (
        'pip install -e ".[docs]"',
        "sphinx-build -W --keep-going -b html docs docs/_build/html",
        "python -m sklearn_cebm",
    ):
        assert command in commands
    assert any(step.kind == "python" and "CEBMEncoder" in step.text for step in steps)


def test_readme_gives_a_fast_and_a_slow_test_command(readme_steps, pytestconfig):
    # The default run leaves the slow tests out (pyproject.toml's addopts); README gives
    # the command that runs them too.
    addopts = pytestconfig.getini("addopts")
    assert addopts[addopts.index("-m") + 1] == "not slow"
    fast, slow = readme_steps.test_commands(readme_steps.read_steps(readme_steps.README))
    assert fast == "python -m pytest"
    assert slow == "python -m pytest -m slow"


def test_ci_runs_the_test_commands_readme_gives(readme_steps):
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^python \.ci/readme_steps\.py", ci, flags=re.MULTILINE)
    # Each of README's test commands is a line of .ci/run of its own, as README writes it.
    lines = ci.splitlines()
    for command in readme_steps.test_commands(readme_steps.read_steps(readme_steps.README)):
        assert command in lines, command


def test_getting_started_gives_readmes_commands(readme_steps):
    readme = _shell_commands(readme_steps.read_steps(readme_steps.README))
    page = _shell_commands(readme_steps.read_steps(ROOT / "docs" / "getting_started.rst"))
    assert page == readme[: len(page)], "the page gives README's first commands, in order"
