"""python -m jaxdigits.report: see build.py."""

from jaxdigits.report import build

build.main()
