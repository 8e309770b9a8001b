"""The daemon's core: actors wired, supervised, journaled; the one facade."""
