"""`python -m jaxhum.export`: the command's entry point; the code is `jaxhum.tools.export`."""

import sys

from jaxhum.tools.export import main

if __name__ == "__main__":
    sys.exit(main())
