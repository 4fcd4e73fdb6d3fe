"""`python app.py` with the server-side span of every Gradio event written to a file, one JSON line each
({"event", "start", "end"}, epoch seconds): benchmarks/browser.py splits a click's time with it.

    python -m benchmarks.timed_app EVENTS_FILE [app.py arguments]

A benchmark tool only: the app itself is unchanged (the wrapper is applied to Gradio in this process).
"""
from __future__ import annotations

import functools
import json
import sys
import time
from pathlib import Path

import gradio.blocks


def record_event_spans(path: Path) -> None:
    """Wrap Blocks.process_api (one event: inputs in, function, outputs out) to append its span to path."""
    original = gradio.blocks.Blocks.process_api

    @functools.wraps(original)
    async def timed(self, block_fn, *args, **kwargs):
        start = time.time()
        try:
            return await original(self, block_fn, *args, **kwargs)
        finally:
            fn = self.fns[block_fn] if isinstance(block_fn, int) else block_fn
            with open(path, "a") as out:
                out.write(json.dumps({"event": fn.api_name, "start": start, "end": time.time()}) + "\n")

    gradio.blocks.Blocks.process_api = timed


def main() -> None:
    record_event_spans(Path(sys.argv[1]))
    import app

    app.main(sys.argv[2:])


if __name__ == "__main__":
    main()
