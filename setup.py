"""Build of the one C extension, ornet.localization._ctree (the component-tree sweep of the box
metrics; see README "Dependencies" for why it is compiled). Everything else is in pyproject.toml.

The extension is optional: without a C compiler the install still succeeds and the metrics fall
back to OpenCV's per-threshold contours (the same numbers, several times slower).
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("ornet.localization._ctree", ["src/ornet/localization/_ctree.c"], optional=True)])
