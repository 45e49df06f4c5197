"""`python -m cli`: the same as the `greenlight` console script."""

from cli.main import main

main()
