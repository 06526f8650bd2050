"""The exception for user-facing errors that are neither ValueError nor FileNotFoundError."""

__all__ = ["PsumError"]


class PsumError(Exception):
    """An error the CLI prints as one line (exit code 2): missing tool, bad checkpoint, ..."""
