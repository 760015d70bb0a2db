"""``python -m escalade.runtime``: the runtime's commands without the compiler.

The same commands as ``escalade event|tick|ack|...|pack ...``, for hosts that
run rule packs but never compile policies (no lark, no jinja2 installed).
"""

from __future__ import annotations

from escalade.runtime.cli import main

if __name__ == "__main__":
    main()
