"""Subcommands of `landscape` for this package (collected by `pipeline.cli`)."""

COMMANDS: list = []
