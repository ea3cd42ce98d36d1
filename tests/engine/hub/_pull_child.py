"""Run one pull in a child process, printing each progress value as a JSON line.

Used by the SIGKILL test: the parent waits for a progress marker, kills this
process with SIGKILL, and pulls again in-process.
"""
from __future__ import annotations

import json
import sys


def main() -> int:
    from lacuna.engine.hub.download import PullOptions, pull

    repo = sys.argv[1]

    def show(p) -> None:
        for f in p.files:
            print(json.dumps({"path": f.path, "done": f.done, "size": f.size, "state": f.state}), flush=True)

    pull(repo, progress=show, options=PullOptions(stall_timeout=60, chunk_size=16 * 1024,
                                                   progress_interval=0.0, margin_bytes=0))
    print(json.dumps({"installed": True}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
