"""`python -m jaxhum.evaluate`: the command's entry point; the code is `jaxhum.tools.evaluate`."""

import sys

from jaxhum.tools.evaluate import main

if __name__ == "__main__":
    sys.exit(main())
