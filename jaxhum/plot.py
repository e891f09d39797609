"""`python -m jaxhum.plot`: the command's entry point; the code is `jaxhum.tools.plot`."""

import sys

from jaxhum.tools.plot import main

if __name__ == "__main__":
    sys.exit(main())
