"""The command-line commands: run, demo, replay, status, journal, check-config."""
