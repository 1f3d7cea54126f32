import sys

from fkhw.cli import main

sys.exit(main())
