"""Recording the daemon's input events (DESIGN §8) and reading recordings back.

``Recorder`` writes; ``iter_events`` reads ``.jsonl`` and ``.jsonl.zst`` for
``replay`` and ``tune``. File layout and rotation: :mod:`.day_files`.
"""

from supervisor.record.reader import iter_events, iter_text_lines
from supervisor.record.recorder import Recorder

__all__ = ["Recorder", "iter_events", "iter_text_lines"]
