"""`python -m jaxhum.falls`: the command's entry point; the code is `jaxhum.tools.falls`."""

import sys

from jaxhum.tools.falls import main

if __name__ == "__main__":
    sys.exit(main())
