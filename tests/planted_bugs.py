"""Plant plausible training bugs in a copy of the package, one at a time; the tests must fail.

The training tests were checked this way: each bug below is a small edit a refactoring
could make by mistake. For each, this script copies the package and its tests into a
scratch folder, applies the edit, and runs the tests named beside it there, with the
sampler's warning ignored (so that a test fails on its assertions, not on a warning). It
reports, per bug and test, whether each failed as it must; and, as a control, that the same
tests pass on the unchanged copy. Run from the repository root::

    python tests/planted_bugs.py            # every bug
    python tests/planted_bugs.py --bug clamp_once_at_the_end

It exits with 1 when a bug goes unnoticed or the control fails.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# name -> (file, text, replacement, tests that must fail with the bug)
BUGS = {
    "buffer_never_written_back": (
        "sklearn_cebm/_core/sgld.py",
        "    buffer.update(indices, samples)\n",
        "",
        [
            "tests/training/test_nets.py::test_pcd_step_writes_the_advanced_chains_back_to_the_buffer",
            "tests/test_model_targets.py::test_cebmencoder_training_recovers_a_1d_mixture_log_density",
            "tests/test_model_targets.py::test_cebmencoder_training_recovers_a_2d_gaussian_log_density",
        ],
    ),
    "clamp_once_at_the_end": (
        "sklearn_cebm/_core/sgld.py",
        "        if bounds is not None:\n            x.clamp_(*bounds)\n    return x\n",
        "    if bounds is not None:\n        x.clamp_(*bounds)\n    return x\n",
        [
            "tests/core/test_sgld.py::test_langevin_dynamics_evaluates_the_energy_inside_the_box_only",
            "tests/test_model_targets.py::test_cebmencoder_sample_matches_the_model_density_in_1d",
            "tests/test_model_targets.py::test_cebmencoder_sample_matches_the_model_mean_and_covariance_in_2d",
        ],
    ),
    "sgld_without_the_energy_gradient": (
        "sklearn_cebm/_core/sgld.py",
        "x = (x.detach() - step_size * gradient + noise_std * noise).detach()",
        "x = (x.detach() + noise_std * noise).detach()",
        [
            "tests/core/test_sgld.py::test_langevin_dynamics_recovers_gaussian_with_ula_bias",
            "tests/training/test_nets.py::test_pcd_chains_descend_the_energy",
            "tests/test_model_targets.py::test_cebmencoder_sample_matches_the_model_density_in_1d",
            "tests/test_model_targets.py::test_gmmcebmclusterer_sample_component_draws_from_that_component",
            "tests/test_model_targets.py::test_cebmencoder_training_recovers_a_1d_mixture_log_density",
        ],
    ),
}


def _scratch_copy(folder):
    for name in ("sklearn_cebm", "tests"):
        shutil.copytree(ROOT / name, folder / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", folder / "pyproject.toml")


def _plant(folder, file, text, replacement):
    path = folder / file
    source = path.read_text()
    if source.count(text) != 1:
        raise RuntimeError(f"{file} no longer holds the text to change once; update BUGS.")
    path.write_text(source.replace(text, replacement))


def _failed_tests(folder, tests):
    """Which of ``tests`` fail in ``folder``, with the copy's package imported."""
    environment = {**os.environ, "PYTHONPATH": str(folder)}
    # Where the import system finds the package, without importing it (and torch with it):
    # find_spec searches sys.path and the import hooks of an editable install in the
    # order that import does.
    check = "import importlib.util; print(importlib.util.find_spec('sklearn_cebm').origin)"
    imported = subprocess.run(
        [sys.executable, "-c", check], cwd=folder, env=environment, capture_output=True, text=True
    ).stdout.strip()
    if not imported.startswith(str(folder)):
        raise RuntimeError(f"the scratch copy is not what is imported: {imported}")
    command = [sys.executable, "-m", "pytest", "-q", "-rf", "-p", "no:cacheprovider"]
    command += ["-o", "addopts=", "-W", "ignore::sklearn_cebm.SamplerWarning", *tests]
    result = subprocess.run(command, cwd=folder, env=environment, capture_output=True, text=True)
    if result.returncode not in (0, 1):
        raise RuntimeError(f"pytest could not run the tests:\n{result.stdout}{result.stderr}")
    failed = {line.split()[1] for line in result.stdout.splitlines() if line.startswith("FAILED")}
    return [test for test in tests if test in failed]


def check(name, control=True):
    """Whether the tests of bug ``name`` pass unchanged and each fails with the bug planted.

    With ``control=False`` the tests are not run on the unchanged copy: for a caller, such
    as the test suite, that runs them on the unchanged package itself.
    """
    file, text, replacement, tests = BUGS[name]
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        _scratch_copy(folder)
        failed_unchanged = _failed_tests(folder, tests) if control else []
        _plant(folder, file, text, replacement)
        failed_planted = _failed_tests(folder, tests)
    caught = not failed_unchanged and failed_planted == tests
    print(f"{name}: {'caught' if caught else 'NOT CAUGHT'}")
    for test in tests:
        before = "fails" if test in failed_unchanged else "passes"
        after = "fails" if test in failed_planted else "passes"
        print(f"    {test}: {f'{before} unchanged, ' if control else ''}{after} with the bug")
    return caught


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bug", choices=sorted(BUGS), action="append")
    args = parser.parse_args(argv)
    results = [check(name) for name in args.bug or BUGS]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
