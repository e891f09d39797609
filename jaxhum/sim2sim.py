"""`python -m jaxhum.sim2sim`: the command's entry point; the code is `jaxhum.tools.sim2sim`."""

import sys

from jaxhum.tools.sim2sim import main

if __name__ == "__main__":
    sys.exit(main())
