import sys

from keras_dbn.cli import main

sys.exit(main())
