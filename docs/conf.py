"""Sphinx configuration of the sklearn-cebm documentation.

Build with ``sphinx-build -W --keep-going -b html docs docs/_build/html`` from the
repository root; the gallery's examples in ``examples/`` run during the build.
"""

import os
import re
import sys
from pathlib import Path

import sklearn_cebm

# sphinx-gallery runs the examples in this process: keep matplotlib off any display.
os.environ.setdefault("MPLBACKEND", "Agg")
sys.path.insert(0, str(Path(__file__).parent))

project = "sklearn-cebm"
author = "sklearn-cebm developers"
copyright = "the sklearn-cebm developers"
release = sklearn_cebm.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

templates_path = ["_templates"]
exclude_patterns = ["_build", "**.ipynb_checkpoints"]
root_doc = "index"
default_role = "literal"

# ----------------------------------------------------------------- API reference
autosummary_generate = True
autodoc_typehints = "none"
# numpydoc lists the members itself from the docstrings' sections; autosummary's class
# template lists the methods, so numpydoc's own member tables would repeat them.
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = True

# Metadata-routing and set_output plumbing inherited from scikit-learn: documented there,
# and their docstrings link to labels of scikit-learn's own documentation.
_SKLEARN_PLUMBING = ("get_metadata_routing", "set_output")


def _skip_sklearn_plumbing(app, what, name, obj, skip, options):
    if name in _SKLEARN_PLUMBING or re.fullmatch(r"set_\w+_request", name):
        return True
    return None


def setup(app):
    app.connect("autodoc-skip-member", _skip_sklearn_plumbing)


# ----------------------------------------------------------------- gallery
sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "doc_module": ("sklearn_cebm",),
    "backreferences_dir": "generated/backreferences",
    "within_subsection_order": "FileNameSortKey",
    "remove_config_comments": True,
    "min_reported_time": 0,
    # An example that raises fails the build, as a broken example should.
    "abort_on_example_error": False,
    "only_warn_on_example_error": False,
}

# ----------------------------------------------------------------- HTML
html_theme = "pydata_sphinx_theme"
html_title = f"sklearn-cebm {release}"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
}
html_static_path = []
