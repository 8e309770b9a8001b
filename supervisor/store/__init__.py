"""The SQLite store: the decision journal and every state the daemon restores.

``sqlite_store``      :class:`Store`, the one class callers use (and the names they import)
``connection``        opening, migrating, file checks, one transaction per call, ``healthy()``
``schema``            the tables, versioned, and the migrations of older files
``file_identity``     is the file at the path still ours? (deleted, replaced, ``-shm`` truncated)
``store_unavailable`` :class:`StoreUnavailable` / :class:`StoreReplaced`: every failure
``payload_codec``     strict JSON for journal payloads, exact JSON for saved state
``journal_kind``      the closed set of journal kinds; ``journal_row`` a row as read
``stop_rows``         a stop state (position or strategy, with its ``extra``) as a row
``exit_claims``       exit and flatten claims: keys, reasons
``kill_record``       a kill as saved; ``strategy_change`` a strategy saved or deleted
``trigger_row``       the TRIGGER index a restart recomputes cooldown and stop guard from
"""
