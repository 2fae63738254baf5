"""`python -m cumpair.demo serve|export|labels` (same as `cumpair demo ...`)."""

import sys

from cumpair.demo.cli import main

sys.exit(main())
