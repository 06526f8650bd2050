import sys

from psum.cli.main import main

sys.exit(main())
