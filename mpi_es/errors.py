"""The error a user can fix: a bad config, option or input file (exit status 2)."""


class ConfigError(Exception):
    """A bad config, option or input file: the message is for the user, exit status 2."""
