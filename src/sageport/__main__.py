"""``python -m sageport`` runs the CLI."""

from sageport.cli.main import main

main()
