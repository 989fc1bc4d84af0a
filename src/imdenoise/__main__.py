"""`python -m imdenoise` runs the CLI (also what `torchrun -m imdenoise train ...` uses)."""

from imdenoise.cli.main import main

main()
