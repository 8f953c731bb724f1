"""`python -m pcdrl VERB ...` is the `pcdrl` command."""
import sys

from pcdrl.cli import main

sys.exit(main())
