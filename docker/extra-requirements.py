"""Print the requirements of one of sdctl's extras (sdctl installed with --no-deps), one per line.

    python docker/extra-requirements.py agent > agent.txt

So an image installs exactly that extra, without the CLI's own dependencies. Standard
library only: slim Python images have no `packaging`.
"""

import re
import sys
from importlib.metadata import requires

extra = sys.argv[1]
wanted = re.compile(r"""extra\s*==\s*["']""" + re.escape(extra) + """["']""")
found = False
for line in requires("sdctl") or []:
    spec, _, marker = line.partition(";")
    if wanted.search(marker):
        print(spec.strip())
        found = True
if not found:
    sys.exit(f"sdctl has no extra named {extra!r}")
