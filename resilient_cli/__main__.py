import sys

from resilient_cli.main import main

sys.exit(main())
