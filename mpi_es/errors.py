"""The error a user can fix, and the exit statuses every command and launcher sees."""

EXIT_OK = 0          # finished
EXIT_FAILED = 1      # anything else (an exception on some rank ended the job)
EXIT_USAGE = 2       # bad usage, config, option or input file; the message says which and why
EXIT_STOPPED = 75    # stopped by a signal after saving a checkpoint: run the same command again


class ConfigError(Exception):
    """A bad config, option or input file: the message is for the user, exit status 2 (one
    line, no traceback, wherever it is raised)."""
    exit_status = EXIT_USAGE
