"""`kaiga serve` whose jobs hold at their first denoising step until the process dies.

    python tests/server/held_serve.py MARKER serve --port ...

runs the kaiga command with one change: at the first denoising step of a job the worker touches the
file MARKER and then waits forever. A test that sees MARKER knows a job is running and will still be
running when it kills the server, however fast the machine.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

from kaiga.worker import Worker


def hold_jobs(marker: Path) -> None:
    real_studio = Worker.studio

    def studio(self):
        real = real_studio(self)

        class Held:
            def generate(self, request, on_step, record_extra=None):
                def step(done: int, total: int) -> None:
                    marker.touch()
                    threading.Event().wait()  # until the process is killed

                return real.generate(request, on_step=step, record_extra=record_extra)

        return Held()

    Worker.studio = studio


if __name__ == "__main__":
    hold_jobs(Path(sys.argv.pop(1)))
    from kaiga.cli import main

    sys.argv[0] = "kaiga"
    main()
