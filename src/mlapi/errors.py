"""Errors a user can cause. The CLI prints their message as one line, no traceback."""


class MlapiError(Exception):
    """Base class for every error whose message is meant for the user."""


class DataError(MlapiError):
    """The dataset is missing, incomplete, corrupt or could not be fetched."""


class ArtifactError(MlapiError):
    """A model or other artifact is missing, corrupt or fails its integrity check."""


class ConfigError(MlapiError, ValueError):
    """A setting is out of range or inconsistent; the message names the flag, the value
    and what is allowed ("--val-fraction must be between 0 and 1, got 1.5")."""
