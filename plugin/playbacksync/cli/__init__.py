"""The ``playback-sync`` command, split by job:

    parser.py      the parser (help with examples, exit codes, config location) and main()
    common.py      exit codes, config and data folder, the queue, --server names
    logs.py        the private, redacted log file
    describe.py    queue rows in words: title, server, "stopped at 1:02:13"
    queue_cmds.py  status, history, retry, clear, pause, resume
    sync_cmd.py    sync (waits on the worker's events; says why changes are left)
    media_cmds.py  play, identify
    setup_cmds.py  settings, login (with LAN discovery)
    progress.py    a progress bar on a terminal, plain lines otherwise

Exit codes: 0 done; 1 done, but something needs the user; 2 bad usage or
settings; 3 the queue cannot be used (storage); 130 interrupted.
"""
from .common import (EXIT_ATTENTION, EXIT_OK, EXIT_STORAGE, EXIT_USAGE, UsageError, data_dir_arg,
                     load_config)
from .logs import setup_logging
from .parser import build_parser, main, register_commands


__all__ = ["EXIT_ATTENTION", "EXIT_OK", "EXIT_STORAGE", "EXIT_USAGE", "UsageError", "build_parser",
           "data_dir_arg", "load_config", "main", "register_commands", "setup_logging"]
