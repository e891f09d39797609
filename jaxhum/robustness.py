"""`python -m jaxhum.robustness`: the command's entry point; the code is `jaxhum.tools.robustness`."""

import sys

from jaxhum.tools.robustness import main

if __name__ == "__main__":
    sys.exit(main())
