import sys

from kes_flask.cli.main import main

sys.exit(main())
