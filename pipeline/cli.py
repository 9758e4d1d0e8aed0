"""`python -m pipeline.cli` (what `mpirun` launches): the `landscape` command."""

from .core.cli import cli, main, register_commands

register_commands()

__all__ = ["cli", "main"]

if __name__ == "__main__":
    main()
