"""User-facing errors: each says what failed, where, and how to fix it.

The CLI turns these into one red line and a non-zero exit; anything else is a bug
and keeps its traceback.
"""


class LandscapeError(Exception):
    """Base class of every error caused by user input rather than by a bug."""


class ConfigError(LandscapeError):
    """A config file, key, value or override is wrong."""


class DatasetError(LandscapeError):
    """A dataset file or folder is missing, unreadable or inconsistent."""


class ArtifactError(LandscapeError):
    """A stage's input folder is missing, stale, tampered with or from another stage."""


class StorageError(ArtifactError):
    """The operating system refused a read or write (permission, space, a file where a folder
    should be): exit status 1, like any OS error, rather than 2 for a user mistake in the input."""
